import { randomBytes } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import pg from 'pg';
import { Runtime, type Role, type RuntimeOptions } from '../../src/app/runtime.js';
import { parseEnv, type Env } from '../../src/config/env.js';
import { createLogger } from '../../src/observability/logger.js';
import { EngramClient, type EngramClientOptions } from '../../src/sdk/index.js';
import { redisClient, type RedisClient } from '../../src/queue/connection.js';
import { listJobs, countJobs, type EngramQueue } from '../../src/queue/queues.js';
import { deleteKeys as deleteEach, scanKeys } from '../../src/queue/scan.js';
import { slotOf } from '../../src/queue/shards.js';
import { FakeModel, type ChatHandler } from '../fake-model/server.js';

/**
 * TEST_REDIS_CLUSTER=1 (`npm run test:cluster`): the local cluster of ops/redis-cluster.sh, with
 * 4 shards (so every master holds some), instead of the single Redis.
 */
export const TEST_REDIS_CLUSTER = process.env.TEST_REDIS_CLUSTER === '1';
export const TEST_REDIS_URL =
  process.env.TEST_REDIS_URL ?? (TEST_REDIS_CLUSTER ? 'redis+cluster://127.0.0.1:7001' : 'redis://127.0.0.1:6379');
/** REDIS_SHARDS of every test runtime, and the SDK clients' `redisShards` where a test makes one. */
export const TEST_REDIS_SHARDS = Number(process.env.TEST_REDIS_SHARDS ?? (TEST_REDIS_CLUSTER ? 4 : 1));
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TEST_DIMENSIONS = 64;

/** Unique per test: its own queue prefix and database schema, so files run in parallel. */
export function uniqueName(label: string): string {
  return `${label}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

export function testEnv(modelUrl: string, overrides: Record<string, string> = {}): Env {
  return parseEnv(testEnvVars(modelUrl, overrides));
}

/** The same environment as variables, for worker processes spawned by a test. */
export function testEnvVars(modelUrl: string, overrides: Record<string, string> = {}): Record<string, string> {
  const id = uniqueName('t');
  return {
    REDIS_URL: TEST_REDIS_URL,
    REDIS_SHARDS: String(TEST_REDIS_SHARDS),
    DATABASE_URL: TEST_DATABASE_URL,
    DATABASE_SCHEMA: id,
    ENGRAM_PREFIX: `engram-test-${id}`,
    OPENAI_API_KEY: 'test-key',
    OPENAI_BASE_URL: modelUrl,
    EMBEDDING_DIMENSIONS: String(TEST_DIMENSIONS),
    LLM_MAX_RETRIES: '0',
    LLM_TIMEOUT_MS: '5000',
    // A loaded test host may be slow to embed; a recall degraded by it would fail unrelated tests.
    QUERY_EMBEDDING_TIMEOUT_MS: '5000',
    DEBOUNCE_MS: '300',
    MAX_WAIT_MS: '5000',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    PORT: '0',
    ...overrides,
  };
}

/** Drops what a test made: its schema and every Redis key under its prefix. */
export async function cleanup(env: Env): Promise<void> {
  // An embedded PGlite (no DATABASE_URL) in memory:// goes away with its runtime.
  if (env.DATABASE_URL) {
    const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 1 });
    try {
      await pool.query(`drop schema if exists "${env.DATABASE_SCHEMA}" cascade`);
    } finally {
      await pool.end();
    }
  }
  await deleteKeys(env.REDIS_URL ?? TEST_REDIS_URL, env.ENGRAM_PREFIX);
}

export async function deleteKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = testRedis(redisUrl);
  try {
    await deleteEach(redis, await redisKeys(redis, prefix));
  } finally {
    redis.disconnect();
  }
}

/**
 * The connection to the node that holds `key`: the cluster's master of the key's slot, or the
 * one Redis (for MONITOR and per-node checks).
 */
export function nodeFor(redis: RedisClient, key: string): Redis {
  if (!(redis instanceof Cluster)) return redis;
  const [hostPort] = redis.slots[slotOf(key)] ?? [];
  const node = redis.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === hostPort);
  if (!node) throw new Error(`no master known for ${key}`);
  return node;
}

/** A connection to the test Redis, or to the test cluster (TEST_REDIS_CLUSTER=1). */
export function testRedis(url = TEST_REDIS_URL): RedisClient {
  return redisClient(url, {});
}

/** Every key under a prefix: its own (`<prefix>:...`) and its shards' (`{<prefix>:<n>...}:...`), on every master. */
export async function redisKeys(redis: RedisClient, prefix: string): Promise<string[]> {
  return scanKeys(redis, [`${prefix}:*`, `{${prefix}:*`]);
}

/** The jobs of these states in every shard's reflection queue. */
export function reflectionJobs(runtime: Runtime, states: Parameters<typeof listJobs>[1]) {
  return listJobs(runtime.queues.reflection, states);
}

/** Reflection jobs per state, summed over the shards. */
export function reflectionCounts(runtime: Runtime, ...states: Parameters<typeof countJobs>[1][]) {
  return countJobs(runtime.queues.reflection, ...states);
}

/** The reflection queue of a thread's shard. */
export function threadQueue(runtime: Runtime, threadId: string): EngramQueue<'reflection'> {
  return runtime.queues.reflection[runtime.buffer.shardOf(threadId)] as EngramQueue<'reflection'>;
}

/** A thread's one reflection job (BullMQ's deduplication keeps one per thread), if it has one. */
export async function threadJob(runtime: Runtime, threadId: string) {
  const queue = threadQueue(runtime, threadId);
  const id = await queue.getDeduplicationJobId(threadId);
  return id ? queue.getJob(id) : undefined;
}

export interface Harness {
  model: FakeModel;
  env: Env;
  runtime: Runtime;
  /** Base URL of the API when the api role runs. */
  url: string;
  stop(): Promise<void>;
}

/** A migrated, started runtime against real Redis and Postgres, with the fake model. */
export async function startHarness(opts: {
  roles: Role[];
  chat?: ChatHandler;
  env?: Record<string, string>;
  runtime?: RuntimeOptions;
}): Promise<Harness> {
  const model = await new FakeModel(opts.chat).start();
  const env = testEnv(model.url, opts.env);
  const log = createLogger({ level: env.LOG_LEVEL });
  const runtime = new Runtime(env, log, { ceilingIntervalMs: 200, ...opts.runtime });
  await runtime.migrate();
  await runtime.start(opts.roles);
  const address = runtime.server?.server.address();
  const url = address && typeof address === 'object' ? `http://127.0.0.1:${address.port}` : '';
  return {
    model,
    env,
    runtime,
    url,
    async stop() {
      await runtime.stop();
      await model.stop();
      await cleanup(env);
    },
  };
}

/** A JSON request to the harness's API: its status and parsed body. */
export function apiCall(h: () => Harness) {
  return async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${h().url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
}

/** Polls until `check` returns a truthy value; fails with the last value seen. */
export async function waitFor<T>(
  check: () => Promise<T> | T,
  { timeoutMs = 15_000, intervalMs = 50 } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline)
      throw new Error(`waitFor timed out after ${timeoutMs} ms; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * The two databases a runtime can use, as harness environments: Postgres (DATABASE_URL), and an
 * embedded PGlite in memory when DATABASE_URL is empty (the service's default).
 */
export const runtimeBackends = [
  { name: 'postgres' as const, env: {} as Record<string, string> },
  { name: 'pglite' as const, env: { DATABASE_URL: '', PGLITE_DATA_DIR: 'memory://' } as Record<string, string> },
];

/**
 * An SDK client of the harness's deployment (its Redis, database, prefix, schema and model),
 * silent, with `over` in place of any of it. The caller closes it.
 */
export function sdkClient(h: Harness, over: Partial<EngramClientOptions> = {}): EngramClient {
  return new EngramClient({
    redisUrl: TEST_REDIS_URL,
    databaseUrl: TEST_DATABASE_URL,
    prefix: h.env.ENGRAM_PREFIX,
    schema: h.env.DATABASE_SCHEMA,
    embedding: { apiKey: 'test-key', baseURL: h.model.url, dimensions: TEST_DIMENSIONS },
    queryEmbeddingTimeoutMs: Number(h.env.QUERY_EMBEDDING_TIMEOUT_MS),
    log: createLogger({ level: 'silent' }),
    ...over,
  });
}
