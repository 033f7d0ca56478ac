import { parseArgs } from 'node:util';
import { parseEnv } from '../src/config/env.js';
import { coerceError } from '../src/errors.js';
import { createLogger } from '../src/observability/logger.js';
import { Redis } from 'ioredis';
import { BUFFER_DEFAULTS, ThreadBuffer } from '../src/queue/buffer.js';
import { createQueues } from '../src/queue/queues.js';
import { QUEUE_NAMES, type QueueName } from '../src/queue/schemas.js';

const usage = `usage: npm run jobs -- <command> [options]
  counts                          jobs per state, per queue; pending and parked threads
  failed [--queue reflection]     failed jobs: id, thread, attempts, reason
  parked                          threads whose reflection failed for good (turns kept)
  retry --job <id> [--queue q]    retry one failed job (its turns are still buffered)
  retry --all [--queue q]         retry every failed job of the queue`;

// Operators' CLI for what Bull Board shows: failed reflections keep their turns buffered until
// a retry commits them. Reads only REDIS_URL and ENGRAM_PREFIX.
try {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      queue: { type: 'string', default: 'reflection' },
      job: { type: 'string' },
      all: { type: 'boolean', default: false },
    },
  });
  const command = positionals[0];
  if (!command || !['counts', 'failed', 'parked', 'retry'].includes(command)) throw new Error(usage);
  if (!QUEUE_NAMES.includes(values.queue as QueueName))
    throw new Error(`--queue must be one of ${QUEUE_NAMES.join(', ')}`);
  const env = parseEnv({ OPENAI_API_KEY: 'unused-by-jobs', DATABASE_URL: 'postgres://unused', ...process.env });
  const log = createLogger({ level: 'warn' });
  if (!env.REDIS_URL) throw new Error('REDIS_URL is required');
  // A one-shot command: a Redis that is down or stalled fails it within seconds, saying so,
  // where a worker's connection would retry for ever.
  const redis = new Redis(env.REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 3_000,
    commandTimeout: 5_000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    // Connected but silent is found by the PING below, within commandTimeout (no ready check
    // or CLIENT SETINFO before it, each of which would wait as long again).
    enableReadyCheck: false,
    disableClientInfo: true,
  });
  let lastError: Error | null = null;
  redis.on('error', (err: Error) => (lastError = err));
  await redis.connect().catch((err: unknown) => {
    throw new Error(`cannot reach Redis at REDIS_URL: ${(lastError ?? coerceError(err)).message}`);
  });
  await redis.ping();
  const queues = createQueues(
    redis,
    {
      prefix: env.ENGRAM_PREFIX,
      reflectionAttempts: env.REFLECTION_ATTEMPTS,
      reflectionBackoffMs: env.REFLECTION_BACKOFF_MS,
    },
    log,
  );
  const queue = queues[values.queue as QueueName];
  const buffer = new ThreadBuffer(redis, env.ENGRAM_PREFIX, BUFFER_DEFAULTS);
  const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
  try {
    if (command === 'counts') {
      for (const name of QUEUE_NAMES)
        print({
          queue: name,
          ...(await queues[name].getJobCounts('waiting', 'delayed', 'active', 'failed', 'completed')),
        });
      print({ pendingThreads: await buffer.pendingThreads(), parkedThreads: (await buffer.parked(0)).count });
    } else if (command === 'parked') {
      for (const { threadId, parkedAt } of (await buffer.parked(1_000)).threads)
        print({ threadId, parkedAt: new Date(parkedAt).toISOString() });
    } else if (command === 'failed') {
      for (const job of await queue.getJobs(['failed'])) {
        print({
          id: job.id,
          data: job.data,
          attempts: job.attemptsMade,
          reason: job.failedReason,
          failedAt: job.finishedOn && new Date(job.finishedOn).toISOString(),
        });
      }
    } else if (values.all) {
      const before = (await queue.getJobCounts('failed')).failed ?? 0;
      await queue.retryJobs({ state: 'failed' });
      print({ retried: before, queue: queue.name });
    } else {
      if (!values.job) throw new Error('retry needs --job <id> or --all');
      const job = await queue.getJob(values.job);
      if (!job) throw new Error(`no job ${values.job} in queue ${queue.name}`);
      if (!(await job.isFailed())) throw new Error(`job ${values.job} is ${await job.getState()}, not failed`);
      await job.retry('failed');
      print({ retried: 1, id: job.id, queue: queue.name });
    }
  } finally {
    redis.disconnect();
  }
} catch (err) {
  const e = coerceError(err);
  const message = e.message === 'Command timed out' ? 'Redis did not answer within 5 s (stalled?)' : e.message;
  process.stderr.write(`engram jobs: ${message}\n`);
  process.exit(1);
}
process.exit(0);
