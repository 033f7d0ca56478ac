import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeSet } from '../src/store/change-set.js';
import type { Db, Queryable } from '../src/store/db.js';
import { MemoryDb } from '../src/store/memory-db.js';
import { migrate } from '../src/store/migrate.js';
import { createPgDb } from '../src/store/pool.js';
import { tables } from '../src/store/sql.js';
import { fakeEmbedding } from './fake-model/embedding.js';
import { silent } from './helpers/backends.js';
import { TEST_DATABASE_URL, TEST_DIMENSIONS, uniqueName } from './helpers/harness.js';
import { RoundTripProxy } from './helpers/round-trip-proxy.js';

/**
 * How the store talks to Postgres (src/store/pool.ts): a transaction's begin travels with its
 * first statements and its last statement with its commit (DATABASE_PIPELINE), and the change
 * set's and the snapshot's statements are prepared once per connection (DATABASE_PREPARE).
 * Round trips are counted by a proxy on the one connection of the pool; both settings off must
 * behave the same, a round trip per statement.
 */
describe.each([
  { mode: 'pipelined and prepared', pipeline: true, prepare: true, commitTrips: 2, settingsTrips: 1 },
  { mode: 'plain', pipeline: false, prepare: false, commitTrips: 5, settingsTrips: 3 },
])('Postgres statements, $mode', ({ pipeline, prepare, commitTrips, settingsTrips }) => {
  const proxy = new RoundTripProxy(new URL(TEST_DATABASE_URL));
  const schema = uniqueName('pipe');
  let db: Db;
  let memories: MemoryDb;
  beforeAll(async () => {
    db = createPgDb(await proxy.start(), 1, silent, { pipeline, prepare });
    await migrate(db, { schema, dimensions: TEST_DIMENSIONS, log: silent });
    memories = new MemoryDb(db, schema, silent);
  });
  afterAll(async () => {
    await db?.query(`drop schema if exists "${schema}" cascade`);
    await db?.close();
    await proxy.stop();
  });

  const reflection = (threadId: string, expected: string | null, next: string, content: string): ChangeSet => ({
    actor: `reflection:${threadId}`,
    threadId,
    once: { cursor: { threadId, expected, next } },
    reads: [{ namespace: ['u', threadId], version: null }],
    writes: [
      {
        op: 'put',
        namespace: ['u', threadId],
        key: content,
        kind: 'memory',
        value: { content },
        fields: [{ field: '$', text: content, vector: fakeEmbedding(content, TEST_DIMENSIONS) }],
        ttl: null,
      },
    ],
  });
  /** The backend that `tx`'s session blocks, once one waits on it (2 s at most). */
  const blockedBy = async (tx: Queryable): Promise<number> => {
    for (let i = 0; i < 200; i++) {
      // Activity read afresh, not from the snapshot a transaction keeps of it.
      await tx.query('select pg_stat_clear_snapshot()');
      const waiting = await tx.query<{ pid: number }>(
        `select pid from pg_stat_activity where pg_blocking_pids(pid) @> array[pg_backend_pid()]`,
      );
      if (waiting.rows[0]) return waiting.rows[0].pid;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('no session waited on this one');
  };
  const state = async (threadId: string) => ({
    cursor: await memories.cursor(threadId),
    keys: (
      await db.query<{ key: string }>(`select key from ${tables(schema).memories} where namespace = $1 order by key`, [
        ['u', threadId],
      ])
    ).rows.map((r) => r.key),
  });

  it('commits a reflection in its round trips, and a spent cursor writes nothing', async () => {
    await memories.apply(reflection('t0', null, '1-0', 'warm-up'));
    proxy.reset();
    const applied = await memories.apply(reflection('t1', null, '1-0', 'likes tea'));
    expect(proxy.roundTrips).toBe(commitTrips);
    expect(applied.status).toBe('applied');
    expect(await state('t1')).toEqual({ cursor: '1-0', keys: ['likes tea'] });

    // Another run of the same turns: the claim fails, and the pipelined statements behind the
    // begin are rolled back with it.
    expect((await memories.apply(reflection('t1', null, '1-0', 'likes coffee'))).status).toBe('duplicate');
    expect(await state('t1')).toEqual({ cursor: '1-0', keys: ['likes tea'] });
  });

  it('a failing last statement leaves nothing of its transaction, and the connection serves on', async () => {
    const bad = reflection('t2', null, '1-0', 'wrong size');
    const put = bad.writes[0] as Extract<ChangeSet['writes'][number], { op: 'put' }>;
    put.fields = [{ field: '$', text: 'wrong size', vector: [1, 2, 3] }];
    // The vector fails the column's dimensions in the write statement, sent with the commit.
    await expect(memories.apply(bad)).rejects.toThrow(/dimensions/);
    // Neither the claim's cursor row nor the namespace row stayed.
    const t = tables(schema);
    const rows = await db.query(
      `select (select count(*) from ${t.cursors} where thread_id = 't2') as cursors,
              (select count(*) from ${t.namespaces} where namespace = array['u', 't2']) as namespaces`,
    );
    expect(rows.rows[0]).toEqual({ cursors: '0', namespaces: '0' });
    expect((await memories.apply(reflection('t2', null, '1-0', 'right size'))).status).toBe('applied');
    expect(await state('t2')).toEqual({ cursor: '1-0', keys: ['right size'] });
  });

  it('statements issued together run in order inside the transaction, and roll back with it', async () => {
    const t = tables(schema);
    await expect(
      db.transaction(async (tx) => {
        const [, counted] = await Promise.all([
          tx.query(`insert into ${t.cursors} (thread_id, cursor) values ('t3', 'x')`),
          tx.query<{ n: string }>(`select count(*) as n from ${t.cursors} where thread_id = 't3'`),
        ]);
        expect(counted.rows[0]?.n).toBe('1');
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await memories.cursor('t3')).toBeNull();
  });

  it("a read with local settings is one statement's round trips, the settings inside it", async () => {
    proxy.reset();
    const res = await db.transaction(
      (tx) => tx.queryAndCommit<{ s: string }>(`select current_setting('work_mem') as s`, [], { prepare: true }),
      { settings: { work_mem: '7777kB' } },
    );
    expect(proxy.roundTrips).toBe(settingsTrips);
    expect(res.rows[0]?.s).toBe('7777kB');
    expect((await db.query<{ s: string }>(`select current_setting('work_mem') as s`)).rows[0]?.s).not.toBe('7777kB');
  });

  it('a connection killed with statements in flight fails the change, which leaves nothing, and the pool serves on', async () => {
    await memories.apply(reflection('t5', null, '1-0', 'likes rain'));
    const t = tables(schema);
    // Another session holds the namespace's row, so the change waits on its locks with its claim
    // (pipelined) or nothing (plain) sent behind them; then its backend is killed.
    const holder = createPgDb(TEST_DATABASE_URL, 1, silent);
    try {
      await holder.transaction(async (tx) => {
        await tx.query(`select 1 from ${t.namespaces} where namespace = $1 for update`, [['u', 't5']]);
        const change = memories.apply(reflection('t5', '1-0', '2-0', 'likes snow'));
        const outcome = change.then(
          () => 'applied',
          (err: Error) => err.message,
        );
        const pid = await blockedBy(tx);
        await tx.query('select pg_terminate_backend($1)', [pid]);
        expect(await outcome).toMatch(/terminat|Connection terminated|connection/i);
      });
    } finally {
      await holder.close();
    }
    expect(await state('t5')).toEqual({ cursor: '1-0', keys: ['likes rain'] });
    expect((await memories.apply(reflection('t5', '1-0', '2-0', 'likes snow'))).status).toBe('applied');
    expect(await state('t5')).toEqual({ cursor: '2-0', keys: ['likes rain', 'likes snow'] });
  });

  it("takes the claim's snapshot under the locks it is sent with", async () => {
    await memories.apply(reflection('t6', null, '1-0', 'likes maps'));
    const t = tables(schema);
    const holder = createPgDb(TEST_DATABASE_URL, 1, silent);
    try {
      // Another writer holds the namespace and, before it lets go, adds the item the change
      // will put. A claim that read before the locks were held would miss that row.
      const change = await holder.transaction(async (tx) => {
        await tx.query(`select 1 from ${t.namespaces} where namespace = $1 for update`, [['u', 't6']]);
        const pending = memories.apply(reflection('t6', '1-0', '2-0', 'likes trains'));
        await blockedBy(tx);
        await tx.query(
          `insert into ${t.memories} (namespace, key, kind, value, version) values ($1, 'likes trains', 'memory', '{}', 7)`,
          [['u', 't6']],
        );
        return { pending };
      });
      const applied = await change.pending;
      expect(applied.status).toBe('applied');
      // An update of the row the holder wrote, not an insert beside it.
      expect(applied.status === 'applied' && applied.results[0]).toMatchObject({
        op: 'put',
        inserted: false,
        item: { version: 8 },
      });
    } finally {
      await holder.close();
    }
  });

  it(`prepares the change set's statements ${prepare ? 'once per connection' : 'never'}`, async () => {
    const names = async () =>
      (await db.query<{ name: string }>(`select name from pg_prepared_statements where name like 'engram_%'`)).rows;
    const before = await names();
    await memories.apply(reflection('t4', null, '1-0', 'likes jazz'));
    await memories.apply(reflection('t4', '1-0', '2-0', 'likes blues'));
    const after = await names();
    if (prepare) {
      // The locks, the claim and the writes, prepared by the first change set of this shape.
      expect(before.length).toBeGreaterThanOrEqual(3);
      expect(after).toEqual(before);
    } else expect(after).toEqual([]);
    expect(await state('t4')).toEqual({ cursor: '2-0', keys: ['likes blues', 'likes jazz'] });

    // A large change runs unprepared: a kept generic plan, right for a reflection, assumes ten
    // rows per array and turns quadratic over a batch.
    const runs = async () =>
      (
        await db.query<{ n: string }>(
          `select coalesce(sum(generic_plans + custom_plans), 0) as n from pg_prepared_statements where name like 'engram_%'`,
        )
      ).rows[0]?.n;
    const small = await runs();
    const batch = reflection('t4', '2-0', '3-0', 'likes folk');
    batch.writes = Array.from({ length: 40 }, (_, i) => ({
      ...(batch.writes[0] as ChangeSet['writes'][number]),
      key: `k${i}`,
    }));
    expect((await memories.apply(batch)).status).toBe('applied');
    expect(await runs()).toBe(small);
    expect((await memories.apply(reflection('t4', '3-0', '4-0', 'likes soul'))).status).toBe('applied');
    if (prepare) expect(Number(await runs())).toBeGreaterThan(Number(small));
  });
});
