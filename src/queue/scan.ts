import { Cluster, type Redis } from 'ioredis';
import { waitReady, type RedisClient } from './connection.js';
import { slotOf } from './shards.js';

/**
 * Key scans that see every key: SCAN on a Cluster connection reaches one node only, so on a
 * cluster each master is scanned on its own connection. Erase and test cleanup use these; the
 * hot path and the reflections never scan.
 */

/**
 * The connections to scan: every master of a cluster, or the one Redis. A cluster knows its
 * nodes once ready: before, it lists none, and a scan would find nothing.
 */
export async function masters(redis: RedisClient): Promise<Redis[]> {
  if (!(redis instanceof Cluster)) return [redis];
  await waitReady(redis, { timeoutMs: 10_000 });
  return redis.nodes('master');
}

/** How a node is named in logs: host:port on a cluster, `redis` for a single server. */
export const nodeName = (redis: RedisClient, node: Redis): string =>
  redis instanceof Cluster ? `${node.options.host}:${node.options.port}` : 'redis';

/**
 * Calls `page` with each page of keys matching `pattern`, and the connection of the node that
 * holds them (a pipeline of reads on that node stays one round trip, whatever the keys' slots).
 */
export async function scanPages(
  redis: RedisClient,
  pattern: string,
  page: (keys: string[], node: Redis) => Promise<void>,
): Promise<void> {
  for (const node of await masters(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1_000);
      cursor = next;
      if (keys.length) await page(keys, node);
    } while (cursor !== '0');
  }
}

/** Every key matching any of `patterns`, sorted. */
export async function scanKeys(redis: RedisClient, patterns: string[]): Promise<string[]> {
  const keys = new Set<string>();
  for (const pattern of patterns)
    await scanPages(redis, pattern, async (page) => void page.forEach((k) => keys.add(k)));
  return [...keys].sort();
}

/**
 * Deletes keys, one DEL per slot on the node that holds it: a cluster refuses a command over keys
 * of several slots even when one node holds them all.
 */
export async function deleteKeys(redis: RedisClient, keys: string[]): Promise<void> {
  const bySlot = new Map<number, string[]>();
  for (const key of keys) {
    const slot = redis instanceof Cluster ? slotOf(key) : 0;
    bySlot.set(slot, [...(bySlot.get(slot) ?? []), key]);
  }
  for (const group of bySlot.values())
    for (let i = 0; i < group.length; i += 500) await redis.del(...group.slice(i, i + 500));
}
