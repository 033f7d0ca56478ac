import { Cluster } from 'ioredis';
import type { RedisClient } from '../core/redis-layout.js';

const SLOTS = 16_384;

/**
 * `/readyz`'s Redis check. One Redis: a PING. A cluster: every slot served by a master the
 * client is connected to, each of them answering a PING, and the cluster's own state `ok`. A
 * turn goes to its thread's shard, so one dead master refuses every thread filed on its slots,
 * while a PING sent to the cluster (one node, at random) still answered: the client drops a
 * dead node from its pool at once but keeps its slots pointing at it until a replica takes over
 * and the slots are read again; the cluster state turns to `fail` only after the node timeout.
 */
export async function redisReady(redis: RedisClient): Promise<void> {
  if (!(redis instanceof Cluster)) {
    await redis.ping();
    return;
  }
  const masters = redis.nodes('master');
  const live = new Set(masters.map((n) => `${n.options.host ?? '127.0.0.1'}:${n.options.port ?? 6379}`));
  for (let slot = 0; slot < SLOTS; slot++) {
    const master = redis.slots[slot]?.[0];
    if (!master || !live.has(master))
      throw new Error(`slot ${slot} of the Redis Cluster has no reachable master (${master ?? 'none'})`);
  }
  await Promise.all(masters.map((node) => node.ping()));
  const state = /cluster_state:(\w+)/.exec(String(await redis.cluster('INFO')))?.[1];
  if (state !== 'ok') throw new Error(`the Redis Cluster's state is ${state ?? 'unknown'}`);
}
