import type { Cluster, Redis } from 'ioredis';

/**
 * Which Redis layout a deployment's settings name, and what is wrong with them: read by the
 * settings schema, the SDK and the jobs CLI as well as the hot path, so it lives here rather
 * than in src/queue (settings must not import the hot-path folder).
 */

/** Whether a Redis URL names a cluster (`redis+cluster://`, `rediss+cluster://`). */
export const isClusterUrl = (url: string): boolean => /^rediss?\+cluster:/i.test(url);

/** The nodes a cluster client starts from, and what every node's connection uses. */
export interface ClusterSeeds {
  nodes: { host: string; port: number }[];
  username?: string;
  password?: string;
  tls: boolean;
}

/**
 * A cluster URL's seed nodes: `redis+cluster://[user:password@]host:port[,host:port...]`. The
 * client learns the other nodes from whichever seed answers first, so a deployment that lists
 * two or three keeps starting while one of them is down (one seed down would hold every process
 * at start). A WHATWG URL takes one host only, hence the split here. Returns what is wrong as a
 * sentence when the URL cannot be read.
 */
export function clusterSeeds(url: string): ClusterSeeds | string {
  const m = /^(rediss?)\+cluster:\/\/(?:([^@/?#]*)@)?([^/?#]*)(\/0?)?$/i.exec(url);
  if (!m) return 'must be redis+cluster://[user:password@]host:port[,host:port...] with no path but /0';
  const [, scheme, userinfo, hostList] = m as unknown as [string, string, string | undefined, string];
  const nodes: ClusterSeeds['nodes'] = [];
  for (const hostPort of hostList.split(',')) {
    const hp = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(hostPort);
    const port = Number(hp?.[2] ?? 6379);
    if (!hp || port < 1 || port > 65_535 || !URL.canParse(`redis://${hostPort}`))
      return `names a seed node that is not host:port: ${JSON.stringify(hostPort)}`;
    nodes.push({ host: (hp[1] as string).replace(/^\[(.*)\]$/, '$1'), port });
  }
  if (nodes.length > 16) return `names ${nodes.length} seed nodes, at most 16`;
  const seeds: ClusterSeeds = { nodes, tls: scheme.toLowerCase() === 'rediss' };
  if (userinfo) {
    const colon = userinfo.indexOf(':');
    const [user, password] = colon < 0 ? [userinfo, ''] : [userinfo.slice(0, colon), userinfo.slice(colon + 1)];
    try {
      if (user) seeds.username = decodeURIComponent(user);
      if (password) seeds.password = decodeURIComponent(password);
    } catch {
      return 'has a user or password that is not percent-encoded';
    }
  }
  return seeds;
}

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
