import type { Cluster, Redis } from 'ioredis';

/**
 * Which Redis layout a deployment's settings name, and what is wrong with them: read by the
 * settings schema, the SDK and the jobs CLI as well as the hot path, so it lives here rather
 * than in src/queue (settings must not import the hot-path folder).
 */

/** Whether a Redis URL names a cluster (`redis+cluster://`, `rediss+cluster://`). */
export const isClusterUrl = (url: string): boolean => /^rediss?\+cluster:/i.test(url);

/**
 * What is wrong with a prefix for this layout, if anything. On a cluster with one shard, BullMQ
 * and the append script need every key in one slot: the prefix must be a hash tag (`{engram}`).
 * With several shards each tag wraps the prefix, so the prefix must hold no brace.
 */
export function layoutProblem(url: string, prefix: string, count: number): string | null {
  if (count > 1 && /[{}]/.test(prefix))
    return 'must hold no { or } when there are several shards: each shard puts its keys under its own hash tag {<prefix>:<n>...}';
  if (count === 1 && isClusterUrl(url) && !/^\{[^{}]+\}$/.test(prefix))
    return 'must be a hash tag such as {engram} on a Redis Cluster with one shard (BullMQ keeps a queue in one hash slot); or set more than one shard to spread over the masters';
  return null;
}

/** A connection to one Redis, or to a Redis Cluster (`redis+cluster://`); BullMQ takes either. */
export type RedisClient = Redis | Cluster;
