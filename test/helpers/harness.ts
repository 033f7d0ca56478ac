import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Runtime, type Role, type RuntimeOptions } from '../../src/app/runtime.js';
import { parseEnv, type Env } from '../../src/config/env.js';
import { createLogger } from '../../src/observability/logger.js';
import { FakeModel, type ChatHandler } from '../fake-model/server.js';

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
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
    DATABASE_URL: TEST_DATABASE_URL,
    DATABASE_SCHEMA: id,
    ENGRAM_PREFIX: `engram-test-${id}`,
    OPENAI_API_KEY: 'test-key',
    OPENAI_BASE_URL: modelUrl,
    EMBEDDING_DIMENSIONS: String(TEST_DIMENSIONS),
    LLM_MAX_RETRIES: '0',
    LLM_TIMEOUT_MS: '5000',
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
  const redis = new Redis(redisUrl);
  try {
    const keys = await redisKeys(redis, prefix);
    for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
  } finally {
    redis.disconnect();
  }
}

export async function redisKeys(redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys.sort();
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
