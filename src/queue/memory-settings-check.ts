import { Cluster } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import type { RedisClient } from './connection.js';
import { masters, nodeName } from './scan.js';

/**
 * What a pending thread costs in Redis depends on two server settings (bench:threads, 20,000
 * threads of one short turn): 6,384 bytes beyond its text on Redis 7.0's defaults, 2,192 with
 * these. `stream-node-max-bytes` caps what Redis allocates up front for a stream's first node (4
 * KiB by default, for a thread's one-turn buffer); `hash-max-listpack-value` keeps BullMQ's job
 * hash, whose options JSON is over 64 bytes, in the compact encoding. The embedded redis-server
 * and compose set both; an operator's own Redis is told at start.
 */
const ADVISED = [
  {
    name: 'stream-node-max-bytes',
    advised: 256,
    fits: (v: number) => v > 0 && v <= 1_024,
    saves: "about 3,800 bytes of each pending thread's one-turn stream",
  },
  {
    name: 'hash-max-listpack-value',
    advised: 1_024,
    fits: (v: number) => v >= 512,
    saves: "about 370 bytes of each pending thread's job hash",
  },
] as const;

/**
 * Warns, per node, of the settings that make each pending thread cost more than it needs
 * (docs/operations.md, "Redis"). Managed Redis often refuses CONFIG: then nothing is said.
 * Returns the nodes warned about (host:port; `redis` for a single server).
 */
export async function checkMemorySettings(redis: RedisClient, log: Logger): Promise<string[]> {
  const warned: string[] = [];
  await Promise.all(
    (await masters(redis)).map(async (node) => {
      const name = nodeName(redis, node);
      const values = await Promise.all(
        ADVISED.map(async (s) => {
          const reply = (await node.config('GET', s.name).catch(() => null)) as string[] | null;
          return reply?.[1] === undefined ? null : Number(reply[1]);
        }),
      );
      const off = ADVISED.flatMap((s, i) => {
        const value = values[i];
        return value === null || value === undefined || s.fits(value) ? [] : [{ ...s, value }];
      });
      if (!off.length) return;
      warned.push(name);
      log.warn(
        {
          ...(redis instanceof Cluster ? { node: name } : {}),
          settings: Object.fromEntries(off.map((s) => [s.name, { is: s.value, advised: s.advised, saves: s.saves }])),
        },
        `Redis settings cost each pending thread more memory than it needs: set ${off.map((s) => `${s.name} ${s.advised}`).join(' and ')} (docs/operations.md, "Redis")`,
      );
    }),
  );
  return warned.sort();
}
