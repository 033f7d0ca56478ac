/**
 * What the keys under one prefix take in Redis, by role (thread buffer, BullMQ job, shared
 * indexes), from MEMORY USAGE over every key, pipelined. Part of `bench:threads`; not the product.
 */
import type { Redis } from 'ioredis';

/** The role of a key under `<prefix>:` (thread ids in this bench hold no colon). */
function role(rest: string): string {
  const thread = /^thread:[^:]+:(\w+)$/.exec(rest);
  if (thread)
    return `thread ${thread[1]} (${thread[1] === 'turns' ? 'stream' : thread[1] === 'ids' ? 'zset' : 'hash'})`;
  if (rest === 'ceilings') return 'ceilings (zset, shared)';
  const job = /^reflection:(.+)$/.exec(rest);
  if (job) {
    const name = job[1] as string;
    if (/^\d+$/.test(name)) return 'job (hash)';
    if (name.startsWith('de:')) return 'job dedup key (string)';
    if (name === 'delayed') return 'delayed jobs (zset, shared)';
    if (name === 'events') return 'queue events (stream, capped, shared)';
    return `queue ${name} (shared)`;
  }
  return rest.split(':')[0] ?? rest;
}

export interface Usage {
  keys: number;
  bytes: number;
  byRole: Map<string, { keys: number; bytes: number }>;
}

/** Every key under `prefix`, its MEMORY USAGE summed by role; big sets counted in full (SAMPLES 0). */
export async function usageUnder(redis: Redis, prefix: string): Promise<Usage> {
  const usage: Usage = { keys: 0, bytes: 0, byRole: new Map() };
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 2000);
    cursor = next;
    const pipeline = redis.pipeline();
    for (const key of batch) {
      const shared = key.endsWith(':ceilings') || key.endsWith(':delayed') || key.endsWith(':events');
      if (shared) pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
      else pipeline.call('MEMORY', 'USAGE', key);
    }
    const replies = (await pipeline.exec()) ?? [];
    batch.forEach((key, i) => {
      const bytes = Number(replies[i]?.[1] ?? 0);
      const r = role(key.slice(prefix.length + 1));
      const entry = usage.byRole.get(r) ?? { keys: 0, bytes: 0 };
      entry.keys++;
      entry.bytes += bytes;
      usage.byRole.set(r, entry);
      usage.keys++;
      usage.bytes += bytes;
    });
  } while (cursor !== '0');
  return usage;
}

/** INFO memory's used_memory: the whole server's, so other clients' keys move it too. */
export async function usedMemory(redis: Redis): Promise<number> {
  const m = /used_memory:(\d+)/.exec(await redis.info('memory'));
  return Number(m?.[1] ?? 0);
}

/** Deletes every key under `prefix` (UNLINK: the server frees them in the background). */
export async function unlinkUnder(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 2000);
    cursor = next;
    if (batch.length) n += await redis.unlink(...batch);
  } while (cursor !== '0');
  return n;
}
