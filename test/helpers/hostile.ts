import { createHash } from 'node:crypto';
import { defineKind } from '../../src/memory/kinds.js';
import { z } from 'zod';
import type { RedisClient } from '../../src/queue/connection.js';
import { redisKeys, testRedis, type Harness } from './harness.js';

/** Tenant keys for hostile-input tests: two tenants and an operator. */
export const HOSTILE_KEYS = {
  acme: 'acme-key-0123456789',
  globex: 'globex-key-0123456789',
  ops: 'ops-key-0123456789abc',
};
export const HOSTILE_API_KEYS = `acme:${HOSTILE_KEYS.acme},globex:${HOSTILE_KEYS.globex},*:${HOSTILE_KEYS.ops}`;
/** With API_KEYS set, every kind's namespace must start with the tenant. */
export const tenantKind = defineKind({
  name: 'memory',
  description: 'A fact',
  namespace: ['{tenant}', 'memories', '{userId}'],
  schema: z.object({ content: z.string() }),
});

export interface Answer {
  status: number;
  body: Record<string, any>;
}

/** A request with a raw body (a string is sent as it is, so it may be any text, JSON or not). */
export async function send(
  h: Harness,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await fetch(`${h.url}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body,
  });
  const text = await res.text();
  let parsed: Record<string, any>;
  try {
    parsed = JSON.parse(text) as Record<string, any>;
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, body: parsed };
}

/**
 * Everything the API may have written, so that a refused request that wrote anything is caught:
 * every table of the test's schema (row count and a hash of its rows) and every Redis key under
 * the test's prefix (its type and a hash of its contents). All of them, not a chosen few: a new
 * table or key a route writes to is covered without touching this.
 */
export async function written(h: Harness) {
  const redis = testRedis();
  try {
    return { tables: await tableState(h), redis: await redisState(redis, h.env.ENGRAM_PREFIX) };
  } finally {
    redis.disconnect();
  }
}

/** Per table of the schema: its rows, counted and hashed (ordered by their text, so stable). */
async function tableState(h: Harness): Promise<Record<string, string>> {
  const schema = h.env.DATABASE_SCHEMA;
  const names = await h.runtime.db.query<{ table_name: string }>(
    `select table_name from information_schema.tables where table_schema = $1 and table_type = 'BASE TABLE' order by table_name`,
    [schema],
  );
  const state: Record<string, string> = {};
  for (const { table_name: name } of names.rows) {
    const quoted = `"${schema.replaceAll('"', '""')}"."${name.replaceAll('"', '""')}"`;
    const res = await h.runtime.db.query<{ n: string; hash: string }>(
      `select count(*)::text as n, md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as hash from ${quoted} t`,
    );
    const row = res.rows[0];
    state[name] = `${row?.n} rows ${row?.hash}`;
  }
  return state;
}

/** Per Redis key under the prefix: its type and a hash of what it holds. */
async function redisState(redis: RedisClient, prefix: string): Promise<Record<string, string>> {
  const state: Record<string, string> = {};
  for (const key of await redisKeys(redis, prefix)) {
    const type = await redis.type(key);
    let contents: unknown;
    if (type === 'string') contents = await redis.get(key);
    else if (type === 'hash') contents = Object.entries(await redis.hgetall(key)).sort();
    else if (type === 'list') contents = await redis.lrange(key, 0, -1);
    else if (type === 'set') contents = (await redis.smembers(key)).sort();
    else if (type === 'zset') contents = await redis.zrange(key, 0, -1, 'WITHSCORES');
    else if (type === 'stream') contents = await redis.xrange(key, '-', '+');
    else contents = type; // gone between the scan and the TYPE ('none'), or a type not used here
    state[key] = `${type} ${createHash('md5').update(JSON.stringify(contents)).digest('hex')}`;
  }
  return state;
}

/** `depth` arrays inside one another around `inner`, as JSON text (no recursion to build it). */
export function nestedJson(depth: number, inner = '1'): string {
  return '['.repeat(depth) + inner + ']'.repeat(depth);
}
