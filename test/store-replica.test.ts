import { createServer, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseEnv } from '../src/config/env.js';
import { Recall, type RecallKind } from '../src/memory/recall.js';
import { EngramClient } from '../src/sdk/client.js';
import type { Db } from '../src/store/db.js';
import { MemoryDb } from '../src/store/memory-db.js';
import { migrate } from '../src/store/migrate.js';
import { openReadDb } from '../src/store/open.js';
import { createPgliteDb } from '../src/store/pglite.js';
import { createPgDb } from '../src/store/pool.js';
import { REPLICA_CONNECT_TIMEOUT_MS, ReplicaDb } from '../src/store/replicas.js';
import { StoreService } from '../src/store/store-service.js';
import type { MemoryItem } from '../src/store/types.js';
import { silent, TestEmbedder } from './helpers/backends.js';
import { closedPort } from './helpers/ports.js';
import { startHarness, TEST_DATABASE_URL, TEST_DIMENSIONS, uniqueName, waitFor } from './helpers/harness.js';

/**
 * Read replicas against a real streaming replica of the test Postgres (ops/replica.sh, which CI
 * runs). Which server answered a read is seen the way a user would see it: the replica's replay
 * is paused (pg_wal_replay_pause), so a write made meanwhile is on the primary only, and a read
 * served by the replica does not show it.
 */
const REPLICA_URL = process.env.TEST_DATABASE_READ_URL ?? 'postgres://postgres@127.0.0.1:5433/test';

/** Why the replica cannot be used, or null when it streams. */
async function replicaProblem(): Promise<string | null> {
  const client = new pg.Client({ connectionString: REPLICA_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ r: boolean }>('select pg_is_in_recovery() as r');
    return rows[0]?.r ? null : `${REPLICA_URL} is not a replica (pg_is_in_recovery() is false)`;
  } catch (err) {
    return `no replica at ${REPLICA_URL} (${(err as Error).message})`;
  } finally {
    await client.end().catch(() => undefined);
  }
}
const problem = await replicaProblem();
if (problem) console.warn(`store-replica.test.ts skipped: ${problem}; start one with: bash ops/replica.sh`);

const kinds: RecallKind[] = [{ name: 'memory', namespace: ['r', '{userId}'], mode: 'collection' }];

describe.skipIf(problem !== null)('reads on a streaming read replica', () => {
  const schema = uniqueName('replica');
  let primary: Db;
  /** A plain connection to the replica, to pause and resume its replay. */
  let replica: Db;
  let readDb: Db;
  let memories: MemoryDb;
  let store: StoreService;
  let recall: Recall;

  /** Until the replica has replayed everything the primary wrote so far. */
  async function caughtUp(): Promise<void> {
    const { rows } = await primary.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
    const lsn = rows[0]?.lsn;
    await waitFor(
      async () =>
        (await replica.query<{ ok: boolean }>('select pg_last_wal_replay_lsn() >= $1::pg_lsn as ok', [lsn])).rows[0]
          ?.ok,
      { timeoutMs: 30_000, intervalMs: 20 },
    );
  }

  /** Runs `fn` while the replica replays nothing: what it writes is on the primary only. */
  async function whilePaused<T>(fn: () => Promise<T>): Promise<T> {
    await caughtUp();
    await replica.query('select pg_wal_replay_pause()');
    try {
      await waitFor(
        async () =>
          (await replica.query<{ s: string }>('select pg_get_wal_replay_pause_state() as s')).rows[0]?.s === 'paused',
      );
      return await fn();
    } finally {
      await replica.query('select pg_wal_replay_resume()');
    }
  }

  beforeAll(async () => {
    primary = createPgDb(TEST_DATABASE_URL, 4, silent);
    replica = createPgDb(REPLICA_URL, 2, silent);
    await migrate(primary, { schema, dimensions: TEST_DIMENSIONS, log: silent });
    readDb = openReadDb([REPLICA_URL], primary, 4, silent) as Db;
    memories = new MemoryDb(primary, schema, silent, undefined, readDb);
    const embedder = new TestEmbedder();
    store = new StoreService(memories, {
      embedder,
      indexFields: ['$'],
      defaultTtlMs: null,
      refreshTtlOnRead: true,
      defaultKind: 'memory',
      actor: 'test',
      log: silent,
    });
    recall = new Recall(memories, embedder, true, () => kinds);
  });

  afterAll(async () => {
    await replica?.query('select pg_wal_replay_resume()').catch(() => undefined);
    await primary?.query(`drop schema if exists "${schema}" cascade`);
    await Promise.allSettled([readDb?.close(), replica?.close(), primary?.close()]);
  });

  it('serves reads from a server in recovery, and writes on the primary', async () => {
    expect((await readDb.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]?.r).toBe(true);
    expect((await primary.query<{ r: boolean }>('select pg_is_in_recovery() as r')).rows[0]?.r).toBe(false);
  });

  it('does not show a write the replica has not replayed, unless the read asks for the primary', async () => {
    const ns = ['r', 'u1'];
    await whilePaused(async () => {
      // A write on the replica would fail (read-only): this one lands on the primary.
      await store.put({ namespace: ns, key: 'k1', value: { text: 'likes green tea' } });

      expect(await store.get({ namespace: ns, key: 'k1' })).toBeNull();
      expect(await store.get({ namespace: ns, key: 'k1', consistency: 'primary' })).toMatchObject({ version: 1 });

      expect(await store.search({ namespacePrefix: ns, query: 'green tea' })).toEqual([]);
      expect(await store.search({ namespacePrefix: ns, query: 'green tea', consistency: 'primary' })).toHaveLength(1);

      expect(await store.listNamespaces({ prefix: ['r'] })).toEqual([]);
      expect(await store.listNamespaces({ prefix: ['r'], consistency: 'primary' })).toEqual([ns]);

      expect(await store.history({ namespace: ns, key: 'k1' })).toEqual([]);
      expect(await store.history({ namespace: ns, key: 'k1', consistency: 'primary' })).toHaveLength(1);

      expect(await recall.search({ namespace: ns, query: 'green tea' })).toEqual([]);
      expect(await recall.search({ namespace: ns, query: 'green tea', consistency: 'primary' })).toHaveLength(1);
      const recalled = await recall.recall({ context: { userId: 'u1' }, query: 'green tea' });
      expect(recalled.memories).toEqual([]);
      const fromPrimary = await recall.recall({
        context: { userId: 'u1' },
        query: 'green tea',
        consistency: 'primary',
      });
      expect(fromPrimary.memories.map((m) => m.key)).toEqual(['k1']);
    });
    // Replayed: the replica shows it too.
    await caughtUp();
    expect(await store.get({ namespace: ns, key: 'k1' })).toMatchObject({ version: 1 });
  });

  it("reads a call's own writes, the reflection's snapshot and the writers' reads on the primary", async () => {
    const ns = ['r', 'u2'];
    await whilePaused(async () => {
      const [put, got, found] = await store.batch([
        { op: 'put', namespace: ns, key: 'k2', value: { text: 'walks the dog at seven' } },
        { op: 'get', namespace: ns, key: 'k2' },
        { op: 'search', namespacePrefix: ns, query: 'dog' },
      ]);
      expect(got).toEqual(put);
      expect(found).toHaveLength(1);

      // A read-only batch may be served by the replica, unless one of its reads asks otherwise.
      expect(await store.batch([{ op: 'get', namespace: ns, key: 'k2' }])).toEqual([null]);
      const [again] = await store.batch([
        { op: 'get', namespace: ns, key: 'k2' },
        { op: 'listNamespaces', prefix: ns, consistency: 'primary' },
      ]);
      expect(again).toMatchObject({ key: 'k2' });

      // Formation's reads compare versions at commit: they see the primary.
      const [snapshot] = await memories.reflectionSnapshot(
        [{ namespace: ns, kinds: ['memory'], profiles: [] }],
        [(await new TestEmbedder().embed(['dog']))[0] as number[]],
        5,
      );
      expect(snapshot).toMatchObject({ version: 1, memories: [{ key: 'k2' }] });
      expect(await memories.namespaceVersions([ns])).toEqual([1]);
      expect(await memories.get(ns, 'k2')).toMatchObject({ version: 1 });
      expect(await memories.namespaceVersions([ns], { consistency: 'replica' })).toEqual([0]);
    });
  });

  it('renews the TTL of what a replica read returned on the primary', async () => {
    const ns = ['r', 'u3'];
    const put = await store.put({ namespace: ns, key: 'k3', value: { text: 'plays chess' }, ttl: 10_000 });
    // A refresh is due once 1% of the TTL has passed since the last one.
    await new Promise((r) => setTimeout(r, 150));
    await whilePaused(async () => {
      const [viaStore] = await store.search({ namespacePrefix: ns, query: 'chess' });
      const onPrimary = (await store.get({ namespace: ns, key: 'k3', consistency: 'primary', refreshTtl: false }))!;
      expect(viaStore!.expiresAt!.getTime()).toBeGreaterThan(put.expiresAt!.getTime());
      expect(onPrimary.expiresAt).toEqual(viaStore!.expiresAt);
      // The replica, paused, still has the expiry of the put: the renewal was not made there.
      const onReplica = await store.get({ namespace: ns, key: 'k3', refreshTtl: false });
      expect(onReplica!.expiresAt).toEqual(put.expiresAt);
    });
    await new Promise((r) => setTimeout(r, 150));
    const before = (await store.get({ namespace: ns, key: 'k3', consistency: 'primary', refreshTtl: false }))!;
    await whilePaused(async () => {
      const [viaRecall] = await recall.search({ namespace: ns, query: 'chess' });
      expect(viaRecall!.expiresAt!.getTime()).toBeGreaterThan(before.expiresAt!.getTime());
      const onPrimary = await store.get({ namespace: ns, key: 'k3', consistency: 'primary', refreshTtl: false });
      expect(onPrimary!.expiresAt).toEqual(viaRecall!.expiresAt);
    });
  });

  describe('a replica that is down', () => {
    const ns = ['r', 'u4'];
    let hung: Server;
    let hungPort = 0;
    let accepted = 0;
    const sockets: Socket[] = [];
    beforeAll(async () => {
      await store.put({ namespace: ns, key: 'k4', value: { text: 'reads novels' } });
      // Accepts connections and never answers: a frozen host, as Postgres's client sees one.
      hung = createServer((socket) => {
        accepted++;
        sockets.push(socket);
      });
      await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
      hungPort = (hung.address() as { port: number }).port;
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => hung?.close(resolve));
    });
    beforeEach(() => {
      accepted = 0;
    });

    function storeOver(urls: string[]): { store: StoreService; reads: ReplicaDb } {
      const reads = openReadDb(urls, primary, 2, silent) as ReplicaDb;
      const m = new MemoryDb(primary, schema, silent, undefined, reads);
      return {
        reads,
        store: new StoreService(m, {
          indexFields: ['$'],
          defaultTtlMs: null,
          refreshTtlOnRead: false,
          defaultKind: 'memory',
          actor: 'test',
          log: silent,
        }),
      };
    }

    it('reads the primary when the replica refuses connections', async () => {
      const { store: s, reads } = storeOver([`postgres://postgres@127.0.0.1:${await closedPort()}/test`]);
      try {
        expect(await s.get({ namespace: ns, key: 'k4' })).toMatchObject({ key: 'k4' });
        expect(reads.status()).toEqual([{ name: expect.stringContaining('127.0.0.1:'), down: true }]);
        expect(await s.search({ namespacePrefix: ns })).toHaveLength(1);
      } finally {
        await reads.close();
      }
    });

    it(
      'reads the primary once a hung replica does not answer within the connect timeout, and skips it for a while',
      { timeout: REPLICA_CONNECT_TIMEOUT_MS + 10_000 },
      async () => {
        const { store: s, reads } = storeOver([`postgres://postgres@127.0.0.1:${hungPort}/test`]);
        try {
          expect(await s.get({ namespace: ns, key: 'k4' })).toMatchObject({ key: 'k4' });
          expect(accepted).toBe(1);
          // Skipped now: the next reads go straight to the primary, without another attempt.
          expect(await s.get({ namespace: ns, key: 'k4' })).toMatchObject({ key: 'k4' });
          expect(await s.listNamespaces({ prefix: ns })).toEqual([ns]);
          expect(accepted).toBe(1);
        } finally {
          await reads.close();
        }
      },
    );

    it('reads another replica, not the primary, while one is down', async () => {
      const { store: s, reads } = storeOver([`postgres://postgres@127.0.0.1:${await closedPort()}/test`, REPLICA_URL]);
      try {
        await whilePaused(async () => {
          await store.put({ namespace: ns, key: 'k5', value: { text: 'new while paused' } });
          // Twice: round robin starts each read at the next replica; both end on the live one.
          expect(await s.get({ namespace: ns, key: 'k5' })).toBeNull();
          expect(await s.get({ namespace: ns, key: 'k5' })).toBeNull();
          expect(await s.get({ namespace: ns, key: 'k5', consistency: 'primary' })).toMatchObject({ key: 'k5' });
        });
        expect(reads.status().map((r) => r.down)).toEqual([true, false]);
      } finally {
        await reads.close();
      }
    });
  });

  it('is wired through the SDK client (databaseReadUrl) and the HTTP API (DATABASE_READ_URL)', async () => {
    const h = await startHarness({ roles: ['api'], env: { DATABASE_READ_URL: `${REPLICA_URL},${REPLICA_URL}` } });
    const client = new EngramClient({
      redisUrl: 'redis://127.0.0.1:6379',
      databaseUrl: TEST_DATABASE_URL,
      databaseReadUrl: [REPLICA_URL],
      schema: h.env.DATABASE_SCHEMA,
    });
    const ns = ['r', 'u6'];
    const get = (consistency?: string) =>
      fetch(
        `${h.url}/v1/store/items?namespace=r&namespace=u6&key=k6${consistency ? `&consistency=${consistency}` : ''}`,
      );
    try {
      await whilePaused(async () => {
        await client.store.put(ns, 'k6', { text: 'from the SDK' });
        expect(await client.store.get(ns, 'k6')).toBeNull();
        expect(await client.store.get(ns, 'k6', { consistency: 'primary' })).toMatchObject({ version: 1 });

        expect((await get()).status).toBe(404);
        const res = await get('primary');
        expect(res.status).toBe(200);
        expect(((await res.json()) as { item: MemoryItem }).item).toMatchObject({ key: 'k6' });
        const bad = await get('nearest');
        expect(bad.status).toBe(400);
        expect(await bad.text()).toMatch(/consistency/);
      });
    } finally {
      await client.close();
      await h.stop();
    }
  });
});

describe('read replica configuration', () => {
  it('refuses DATABASE_READ_URL without DATABASE_URL: the embedded PGlite has no replicas', () => {
    const base = { REDIS_URL: 'redis://127.0.0.1:6379', OPENAI_API_KEY: 'k' };
    expect(() => parseEnv({ ...base, DATABASE_READ_URL: REPLICA_URL })).toThrow(
      /DATABASE_URL: is required when DATABASE_READ_URL is set/,
    );
    const env = parseEnv({
      ...base,
      DATABASE_URL: TEST_DATABASE_URL,
      DATABASE_READ_URL: ' postgres://r1:5433/x , postgresql://r2/x ',
    });
    expect(env.DATABASE_READ_URL).toEqual(['postgres://r1:5433/x', 'postgresql://r2/x']);
    expect(() => parseEnv({ ...base, DATABASE_URL: TEST_DATABASE_URL, DATABASE_READ_URL: 'mysql://r1/x' })).toThrow(
      /DATABASE_READ_URL/,
    );
  });

  it('refuses read replicas over PGlite in the SDK and in openReadDb', async () => {
    const db = createPgliteDb('memory://', silent);
    try {
      expect(() => new EngramClient({ redisUrl: 'redis://127.0.0.1:6379', databaseReadUrl: [REPLICA_URL] })).toThrow(
        /`databaseReadUrl` needs `databaseUrl`/,
      );
      expect(
        () => new EngramClient({ redisUrl: 'redis://127.0.0.1:6379', databaseReadUrl: [REPLICA_URL], db }),
      ).toThrow(/PGlite has none/);
      expect(() => openReadDb([REPLICA_URL], db, 2, silent)).toThrow(/embedded PGlite/);
      expect(openReadDb(undefined, db, 2, silent)).toBeNull();
    } finally {
      await db.close();
    }
  });
});
