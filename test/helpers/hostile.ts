import { Redis } from 'ioredis';
import { defineKind } from '../../src/memory/kinds.js';
import { z } from 'zod';
import { redisKeys, TEST_REDIS_URL, type Harness } from './harness.js';
import { storeState } from './store-state.js';

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

/** Everything the API may have written: store tables and Redis keys under the test's prefix. */
export async function written(h: Harness) {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    // BullMQ's own bookkeeping (meta, events stream) is not the API's writes.
    const keys = (await redisKeys(redis, h.env.ENGRAM_PREFIX)).filter((k) => !/:(meta|events|stalled-check)$/.test(k));
    return { store: await storeState(h.runtime), redis: keys };
  } finally {
    redis.disconnect();
  }
}

/** `depth` arrays inside one another around `inner`, as JSON text (no recursion to build it). */
export function nestedJson(depth: number, inner = '1'): string {
  return '['.repeat(depth) + inner + ']'.repeat(depth);
}
