import { Cluster } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import type { RedisClient } from './connection.js';
import { masters, nodeName } from './scan.js';

/**
 * An evicted buffer or job key is a lost turn (docs/prior-art.md: BullMQ), so say it loudly when
 * Redis may evict: on a cluster, for each master, since each holds its own shards' keys and its
 * own setting. Managed Redis often refuses CONFIG: then there is nothing to check. Returns the
 * nodes whose policy is not `noeviction` (host:port; `redis` for a single server).
 */
export async function checkEviction(redis: RedisClient, log: Logger): Promise<string[]> {
  const evicting: string[] = [];
  await Promise.all(
    (await masters(redis)).map(async (node) => {
      const name = nodeName(redis, node);
      const reply = (await node.config('GET', 'maxmemory-policy').catch(() => null)) as string[] | null;
      const policy = reply?.[1];
      if (!policy || policy === 'noeviction') return;
      evicting.push(name);
      log.error(
        { policy, ...(redis instanceof Cluster ? { node: name } : {}) },
        'Redis maxmemory-policy is not noeviction: under memory pressure Redis may drop buffered turns and jobs; set maxmemory-policy noeviction',
      );
    }),
  );
  return evicting.sort();
}
