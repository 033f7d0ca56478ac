import { z } from 'zod';
import { commandArgs } from '../src/app/command-args.js';
import { readPublication } from '../src/config/published-settings.js';
import { settings } from '../src/config/settings.js';
import { redisStalled } from '../src/dependency-errors.js';
import { coerceError } from '../src/errors.js';
import { exitAfterOutput } from '../src/app/exit-after-output.js';
import { createLogger } from '../src/observability/logger.js';
import { BUFFER_DEFAULTS } from '../src/queue/buffer.js';
import { redisClient } from '../src/queue/connection.js';
import { createQueues, ensureReflection, everyQueue, type EngramQueue } from '../src/queue/queues.js';
import { layoutProblem } from '../src/core/redis-layout.js';
import { shardTags } from '../src/queue/shards.js';
import { ThreadBuffers } from '../src/queue/thread-buffers.js';

const usage = `usage: npm run jobs -- <command> [options]
  counts                          jobs per state, per queue (each shard's reflection queue); pending and parked threads
  failed [--queue q]              failed jobs: id, queue, thread, attempts, reason (every reflection queue by default)
  parked                          threads whose reflection failed for good (turns kept)
  retry --job <id> [--queue q]    retry one failed job (its turns are still buffered); --queue when shards share the id
  retry --all [--queue q]         retry every failed job of the queue (of every reflection queue by default)
  retry --thread <id>             retry a parked thread (id as \`parked\` prints it): its failed job, or a new
                                  one when that job is gone (failed jobs are removed after 30 days, turns are kept)`;

/** Which flags each command takes: any other is refused, not ignored (`counts --queue x` printed every queue). */
const takes = { counts: [], parked: [], failed: ['queue'], retry: ['queue', 'job', 'all', 'thread'] } as const;
type Command = keyof typeof takes;
const argsSchema = z
  .object({
    positionals: z.array(z.string()),
    queue: z.string().optional(),
    job: z.string().optional(),
    all: z.boolean().optional(),
    thread: z.string().min(1).optional(),
  })
  .superRefine((a, ctx) => {
    const [command, extra] = a.positionals;
    const problem = !command
      ? 'a command is needed'
      : !(command in takes)
        ? `no command ${JSON.stringify(command)}`
        : extra !== undefined
          ? `${command} takes no argument ${JSON.stringify(extra)} (a queue is --queue <name>, a job --job <id>)`
          : (['queue', 'job', 'all', 'thread'] as const)
              .filter(
                (flag) => a[flag] !== undefined && !(takes[command as Command] as readonly string[]).includes(flag),
              )
              .map((flag) => `${command} takes no --${flag}`)[0];
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
    // Before anything connects: a usage error is not followed by the queues' connection warnings.
    else if (command === 'retry' && [a.job, a.all, a.thread].filter((x) => x !== undefined).length !== 1)
      ctx.addIssue({ code: 'custom', message: 'retry takes one of --job <id>, --all or --thread <id>' });
    else if (a.thread !== undefined && a.queue !== undefined)
      ctx.addIssue({ code: 'custom', message: "retry --thread finds the thread's queue itself: drop --queue" });
  })
  .transform((a) => ({ command: a.positionals[0] as Command, values: a }));

/** What the CLI reads: REDIS_SHARDS only when set, else what the service published. */
const cliEnvSchema = z.object({
  REDIS_URL: settings.redisUrl.schema.optional(),
  ENGRAM_PREFIX: settings.prefix.schema.default('engram'),
  REDIS_SHARDS: z.coerce.number().pipe(settings.redisShards.schema).optional(),
});

/** Closes the Redis connection once it is made; what a stdout closed under the command calls. */
let disconnect = () => undefined as void;
// A reader that closes its end early (`| head -1`) ends the command quietly with 0, as unix
// tools end on EPIPE: the rest of the output has nowhere to go. Unhandled, the stream's 'error'
// event crashed the process with a stack.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  disconnect();
  if (err.code === 'EPIPE') process.exit(0);
  process.stderr.write(`engram jobs: cannot write to stdout: ${err.message}\n`);
  process.exit(1);
});

// Operators' CLI for what Bull Board shows: failed reflections keep their turns buffered until
// a retry commits them. Reads only REDIS_URL, ENGRAM_PREFIX and REDIS_SHARDS.
try {
  const given = commandArgs(
    process.argv.slice(2),
    { queue: { type: 'string' }, job: { type: 'string' }, all: { type: 'boolean' }, thread: { type: 'string' } },
    argsSchema,
    usage,
  );
  if (given.help) {
    process.stdout.write(`${usage}\n`);
    await exitAfterOutput(0);
  }
  const { command, values } = (given as Exclude<typeof given, { help: true }>).args;
  const parsed = cliEnvSchema.safeParse(
    Object.fromEntries(Object.entries(process.env).filter(([, v]) => v !== undefined && v !== '')),
  );
  if (!parsed.success) throw new Error(`invalid environment: ${z.prettifyError(parsed.error)}`);
  const env = parsed.data;
  const log = createLogger({ level: 'warn' });
  if (!env.REDIS_URL)
    throw new Error(
      'REDIS_URL is required: the Redis the service uses (an all-in-one process with its embedded redis-server logs it as `url` in its "embedded redis-server started" line)',
    );
  // A one-shot command: a Redis that is down or stalled fails it within seconds, saying so,
  // where a worker's connection would retry for ever.
  const redis = redisClient(
    env.REDIS_URL,
    {
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
    },
    // A cluster's first CLUSTER SLOTS gets the connection's 3 s too, not ioredis' 1 s: on a busy
    // host (a CI run SIGKILLing workers) it ran out, and the command failed with "Failed to
    // refresh slots cache" where a single Redis would have answered.
    { slotsRefreshTimeout: 3_000 },
  );
  disconnect = () => redis.disconnect();
  let lastError: Error | null = null;
  redis.on('error', (err: Error) => (lastError = err));
  await redis.connect().catch((err: unknown) => {
    throw new Error(`cannot reach Redis at REDIS_URL: ${(lastError ?? coerceError(err)).message}`);
  });
  await redis.ping();
  const prefix = env.ENGRAM_PREFIX;
  const shards = env.REDIS_SHARDS ?? (await readPublication(redis, prefix))?.settings.redisShards ?? 1;
  const problem = layoutProblem(env.REDIS_URL, prefix, shards);
  if (problem) throw new Error(`ENGRAM_PREFIX ${problem} (REDIS_SHARDS is ${shards})`);
  const queues = createQueues(redis, { prefix, shards, reflectionAttempts: 1, reflectionBackoffMs: 0 }, log);
  const all = everyQueue(queues);
  if (values.queue !== undefined && !all.some((q) => q.name === values.queue))
    throw new Error(`--queue must be one of ${all.map((q) => q.name).join(', ')}`);
  // The queues a command acts on: the one named, else every shard's reflection queue.
  const chosen = values.queue === undefined ? queues.reflection : all.filter((q) => q.name === values.queue);
  const buffers = new ThreadBuffers(redis, shardTags(prefix, shards), BUFFER_DEFAULTS);
  const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
  try {
    if (command === 'counts') {
      for (const queue of all)
        print({
          queue: queue.name,
          ...(await queue.getJobCounts('waiting', 'delayed', 'active', 'failed', 'completed')),
        });
      print({ pendingThreads: await buffers.pendingThreads(), parkedThreads: (await buffers.parked(0)).count });
    } else if (command === 'parked') {
      for (const { threadId, parkedAt } of (await buffers.parked(1_000)).threads)
        print({ threadId, parkedAt: new Date(parkedAt).toISOString() });
    } else if (command === 'failed') {
      for (const queue of chosen)
        for (const job of await queue.getJobs(['failed']))
          print({
            id: job.id,
            queue: queue.name,
            data: job.data,
            attempts: job.attemptsMade,
            reason: job.failedReason,
            failedAt: job.finishedOn && new Date(job.finishedOn).toISOString(),
          });
    } else if (values.thread !== undefined) {
      print(await retryThread(values.thread, queues.reflection[buffers.shardOf(values.thread)]!, buffers));
    } else if (values.all) {
      for (const queue of chosen) {
        const before = (await queue.getJobCounts('failed')).failed ?? 0;
        await queue.retryJobs({ state: 'failed' });
        print({ retried: before, queue: queue.name });
      }
    } else {
      // Job ids count per queue: shards may each hold a job of this id.
      const found = (await Promise.all(chosen.map((q) => q.getJob(values.job as string)))).flatMap((job, i) =>
        job ? [{ job, queue: chosen[i]!.name }] : [],
      );
      const names = chosen.map((q) => q.name).join(', ');
      if (found.length === 0) throw new Error(`no job ${values.job} in queue ${names}`);
      if (found.length > 1)
        throw new Error(
          `job ${values.job} is in ${found.map((f) => f.queue).join(', ')}: say which with --queue <name>`,
        );
      const [{ job, queue }] = found as [(typeof found)[number]];
      if (!(await job.isFailed())) throw new Error(`job ${values.job} is ${await job.getState()}, not failed`);
      await job.retry('failed');
      print({ retried: 1, id: job.id, queue });
    }
  } finally {
    redis.disconnect();
  }
} catch (err) {
  const e = coerceError(err);
  const message = redisStalled(e) ? 'Redis did not answer within 5 s (stalled?)' : e.message;
  process.stderr.write(`engram jobs: ${message}\n`);
  await exitAfterOutput(1);
}
await exitAfterOutput(0);

/**
 * A parked thread's way back when its failed job is gone: BullMQ removes failed jobs after 30
 * days (queues.ts), while a parked thread keeps its turns until a reflection commits them, so
 * `retry --all` no longer reached it and only the user's next turn could. Its failed job is
 * retried while kept (one job per thread, its attempts' history with it), else a new one added;
 * the reflection that commits unparks it, as after any retry.
 */
async function retryThread(threadId: string, queue: EngramQueue<'reflection'>, buffers: ThreadBuffers) {
  const parked = await buffers.of(threadId).isParked(threadId);
  if (!parked) throw new Error(`thread ${JSON.stringify(threadId)} is not parked (\`parked\` lists the ones that are)`);
  const failed = (await queue.getJobs(['failed'])).filter((job) => job.data.threadId === threadId);
  const latest = failed.sort((a, b) => (b.finishedOn ?? 0) - (a.finishedOn ?? 0))[0];
  if (latest) {
    await latest.retry('failed');
    return { retried: 1, thread: threadId, id: latest.id, queue: queue.name };
  }
  const job = await ensureReflection(queue, threadId);
  return { retried: 1, thread: threadId, id: job.id, queue: queue.name, newJob: true };
}
