import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { slotOf } from '../../src/queue/shards.js';
import { waitFor } from './harness.js';
import { closedPort } from './ports.js';

const HOST = '127.0.0.1';

/** One `redis-server` of a private cluster, with a connection to it alone (not a cluster client). */
export interface ClusterNode {
  port: number;
  dir: string;
  child: ChildProcess;
  exited: Promise<void>;
  admin: Redis;
  /** Its cluster node id. */
  id: string;
}

/** One line of CLUSTER NODES, as a node sees the cluster. */
interface NodeView {
  id: string;
  port: number;
  flags: string[];
  masterId: string | null;
  slots: [number, number][];
}

export interface Kill {
  slot: number;
  master: ClusterNode;
  replica: ClusterNode;
  /** performance.now() once the master's process was gone. */
  at: number;
}

export interface Failover {
  killedPort: number;
  promotedPort: number;
  /** From the master's death until every surviving node says `cluster_state:ok` with the replica owning the slot. */
  ms: number;
}

/**
 * A Redis Cluster of its own for one test file, with replicas: the shared one on 7001-7003
 * (ops/redis-cluster.sh) has none, and other work runs against it, so a test that kills a master
 * brings its own. Every node runs as engram asks of any Redis (invariant 2: AOF at everysec,
 * `noeviction`), with a short node timeout so that a failover takes seconds, not the default 15.
 */
export class TestCluster {
  /** The seed list a process is given: every master of the cluster as created. */
  url = '';
  /** Nodes detachReplicaOf stopped (SIGSTOP): they answer nothing until resumed. */
  private readonly stopped = new Set<ClusterNode>();

  private constructor(
    readonly nodes: ClusterNode[],
    private readonly masters: number,
    private readonly root: string,
    private readonly onExit: () => void,
  ) {}

  /**
   * `masters` masters with `replicasPerMaster` replicas each, on free loopback ports, each in
   * its own folder under the system's temp dir; resolves once every node says `cluster_state:ok`,
   * knows every other, and every replica is in sync with its master.
   */
  static async start({ masters = 3, replicasPerMaster = 1, nodeTimeoutMs = 1_000 } = {}): Promise<TestCluster> {
    const root = await mkdtemp(join(tmpdir(), 'engram-failover-'));
    const count = masters * (1 + replicasPerMaster);
    const ports = await freePorts(count * 2);
    const nodes: ClusterNode[] = [];
    // However the test's process ends, take the servers along (a crashed worker must not leave
    // six redis-servers behind).
    const onExit = () => nodes.forEach((n) => n.child.kill('SIGKILL'));
    process.once('exit', onExit);
    const cluster = new TestCluster(nodes, masters, root, onExit);
    try {
      for (let i = 0; i < count; i++) {
        nodes.push(await startNode(join(root, String(i)), ports[2 * i]!, ports[2 * i + 1]!, nodeTimeoutMs));
      }
      await promisify(execFile)('redis-cli', [
        '--cluster',
        'create',
        ...nodes.map((n) => `${HOST}:${n.port}`),
        '--cluster-replicas',
        String(replicasPerMaster),
        '--cluster-yes',
      ]);
      await waitFor(() => cluster.settled(count), { timeoutMs: 30_000, intervalMs: 50 });
      const view = await clusterNodes(nodes[0]!);
      const seeds = view.filter((v) => v.flags.includes('master')).map((v) => `${HOST}:${v.port}`);
      cluster.url = `redis+cluster://${seeds.join(',')}`;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** The nodes still running. */
  get live(): ClusterNode[] {
    return this.nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
  }

  /** The node that serves `key`'s slot now, as the first live node sees the cluster. */
  async masterOf(key: string): Promise<ClusterNode> {
    const id = await ownerOf(
      this.live.find((n) => !this.stopped.has(n))!,
      slotOf(key),
    );
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`no master serves ${key}`);
    return node;
  }

  /** The replica of the master serving `key`'s slot. */
  async replicaOf(key: string): Promise<ClusterNode> {
    const master = await this.masterOf(key);
    const id = (await clusterNodes(master)).find((v) => v.masterId === master.id)?.id;
    const replica = this.nodes.find((n) => n.id === id);
    if (!replica) throw new Error(`the master on ${master.port} has no replica`);
    return replica;
  }

  /**
   * Replication lag made long enough to see: stops the replica of `key`'s master (SIGSTOP) and
   * has the master drop its link, so that nothing the master acknowledges from now on reaches a
   * replica. `killMasterOf` resumes it (SIGCONT) once the master is dead.
   */
  async detachReplicaOf(key: string): Promise<void> {
    const master = await this.masterOf(key);
    const replica = await this.replicaOf(key);
    replica.child.kill('SIGSTOP');
    this.stopped.add(replica);
    await master.admin.call('client', 'kill', 'type', 'replica');
    await waitFor(async () => parseInfo(await master.admin.info('replication')).connected_slaves === '0');
  }

  /**
   * SIGKILLs the master serving `key`'s slot, as a crash of its machine would, and resolves once
   * the process is gone. Nothing restarts it; `promotion` waits for its replica to take over.
   * `holdPromotion`: the replica does not take over until `allowPromotion`, so that the cluster
   * stays down (`cluster_state:fail` on every node, once `down` resolves) for as long as a test
   * needs, instead of the second or so between the master's failure flag and the promotion.
   */
  async killMasterOf(key: string, { holdPromotion = false } = {}): Promise<Kill> {
    const slot = slotOf(key);
    const master = await this.masterOf(key);
    const replica = await this.replicaOf(key);
    if (holdPromotion) {
      await replica.admin.config('SET', 'cluster-replica-no-failover', 'yes');
      // However long it is held, the replica may still take over: by default one whose link to
      // its master has been down for 10 node timeouts (plus a ping period) no longer tries.
      await replica.admin.config('SET', 'cluster-replica-validity-factor', '0');
    }
    const at = performance.now();
    master.child.kill('SIGKILL');
    await master.exited;
    master.admin.disconnect();
    // A replica detachReplicaOf stopped; a no-op for one that runs.
    replica.child.kill('SIGCONT');
    this.stopped.delete(replica);
    return { slot, master, replica, at };
  }

  /**
   * Resolves once every live node says `cluster_state:fail`: the dead master is flagged failed
   * and its slots are served by no one, so every master answers `CLUSTERDOWN`.
   */
  async down(): Promise<void> {
    await waitFor(
      async () => {
        for (const node of this.live) if ((await clusterInfo(node)).cluster_state !== 'fail') return false;
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 20 },
    );
  }

  /** Lets the replica of a master killed with `holdPromotion` take over, as it would have. */
  async allowPromotion(kill: Kill): Promise<void> {
    await kill.replica.admin.config('SET', 'cluster-replica-no-failover', 'no');
  }

  /**
   * Resolves once the killed master's replica was promoted: every surviving node says
   * `cluster_state:ok` and names the replica as the slot's master.
   */
  async promotion(kill: Kill): Promise<Failover> {
    await waitFor(
      async () => {
        for (const node of this.live) {
          if ((await clusterInfo(node)).cluster_state !== 'ok') return false;
          if ((await ownerOf(node, kill.slot)) !== kill.replica.id) return false;
        }
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 20 },
    );
    return {
      killedPort: kill.master.port,
      promotedPort: kill.replica.port,
      ms: Math.round(performance.now() - kill.at),
    };
  }

  /** Kills every node and removes their folders. */
  async stop(): Promise<void> {
    process.off('exit', this.onExit);
    for (const node of this.nodes) {
      node.admin.disconnect();
      node.child.kill('SIGKILL');
    }
    await Promise.all(this.nodes.map((n) => n.exited));
    await rm(this.root, { recursive: true, force: true });
  }

  /** Every node ok and knowing all `count`, every master with its replicas online, every replica synced. */
  private async settled(count: number): Promise<boolean> {
    for (const node of this.nodes) {
      const info = await clusterInfo(node);
      if (info.cluster_state !== 'ok' || Number(info.cluster_known_nodes) !== count) return false;
      const replication = parseInfo(await node.admin.info('replication'));
      if (replication.role === 'slave') {
        if (replication.master_link_status !== 'up' || replication.master_sync_in_progress !== '0') return false;
      }
    }
    // Each node's own view: every replica attached to a master (redis-cli's REPLICATE landed everywhere).
    const views = await Promise.all(this.nodes.map(clusterNodes));
    return views.every((view) => view.filter((v) => v.masterId).length === count - this.masters);
  }
}

async function startNode(dir: string, port: number, busPort: number, nodeTimeoutMs: number): Promise<ClusterNode> {
  await mkdir(dir);
  // prettier-ignore
  const args = [
    '--port', String(port), '--bind', HOST, '--protected-mode', 'no', '--dir', dir,
    '--logfile', 'redis.log',
    // The bus port picked free like the port, not port + 10000 (which may be taken or past 65535).
    '--cluster-enabled', 'yes', '--cluster-port', String(busPort), '--cluster-config-file', 'nodes.conf',
    '--cluster-node-timeout', String(nodeTimeoutMs),
    '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--maxmemory-policy', 'noeviction',
    // A replica's first sync starts at once: by default a master waits 5 s for more replicas.
    '--repl-diskless-sync-delay', '0',
  ];
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    // No redis-server on PATH: no exit follows.
    child.once('error', (err) => ((spawnError = err), resolve()));
  });
  const admin = new Redis({ host: HOST, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  admin.on('error', () => undefined);
  try {
    await waitFor(
      async () => {
        if (spawnError) throw spawnError;
        if (child.exitCode !== null) throw new Error(`redis-server on ${port} exited with ${child.exitCode}`);
        return admin.connect().then(
          () => true,
          () => false,
        );
      },
      { timeoutMs: 10_000 },
    );
  } catch (err) {
    const log = await readFile(join(dir, 'redis.log'), 'utf8').catch(() => '');
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${log.split('\n').slice(-10).join('\n')}`, { cause: err });
  }
  const id = (await admin.call('cluster', 'myid')) as string;
  return { port, dir, child, exited, admin, id };
}

/** `n` distinct free loopback ports. */
async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await closedPort());
  return [...ports];
}

function parseInfo(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split(/\r?\n/)
      .filter((l) => l.includes(':') && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
  );
}

async function clusterInfo(node: ClusterNode): Promise<Record<string, string>> {
  return parseInfo((await node.admin.call('cluster', 'info')) as string);
}

async function clusterNodes(node: ClusterNode): Promise<NodeView[]> {
  const text = (await node.admin.call('cluster', 'nodes')) as string;
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, master, , , , , ...slots] = line.trim().split(' ');
      return {
        id: id!,
        port: Number(/:(\d+)@/.exec(address!)?.[1]),
        flags: flags!.split(','),
        masterId: master === '-' ? null : master!,
        // Ranges and single slots; importing/migrating entries ([...]) never occur here.
        slots: slots.map((s) => s.split('-').map(Number) as [number, number]).map(([a, b]) => [a, b ?? a]),
      };
    });
}

/** The id of the master serving `slot`, as `node` sees the cluster. */
async function ownerOf(node: ClusterNode, slot: number): Promise<string | undefined> {
  return (await clusterNodes(node)).find(
    (v) => v.flags.includes('master') && !v.flags.includes('fail') && v.slots.some(([a, b]) => slot >= a && slot <= b),
  )?.id;
}
