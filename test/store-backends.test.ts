import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PermanentError } from '../src/errors.js';
import type { Db } from '../src/store/db.js';
import { MemoryDb } from '../src/store/memory-db.js';
import { migrate } from '../src/store/migrate.js';
import { migrations } from '../src/store/migrations/index.js';
import { createPgliteDb } from '../src/store/pglite.js';
import { fakeEmbedding } from './fake-model/embedding.js';
import { backends, openStore, silent } from './helpers/backends.js';
import { TEST_DIMENSIONS } from './helpers/harness.js';
import { tables } from '../src/store/sql.js';

describe.each(backends)('store invariants on $name', (backend) => {
  it('no connection or transaction is held while the embedder runs (invariant 8)', async () => {
    const f = await openStore(backend);
    try {
      const heldDuringEmbed: number[] = [];
      f.embedder.onEmbed = () => heldDuringEmbed.push(f.db.busy);
      await f.store.put({ namespace: ['inv'], key: 'a', value: { content: 'one' } });
      await f.store.batch([
        { op: 'put', namespace: ['inv'], key: 'b', value: { content: 'two' } },
        { op: 'search', namespacePrefix: ['inv'], query: 'two' },
      ]);
      await f.store.search({ namespacePrefix: ['inv'], query: 'one' });
      expect(heldDuringEmbed).toEqual([0, 0, 0]);
      // The check itself can fail: an embed call made while a transaction is open is seen.
      await f.db.transaction(async () => void (await f.embedder.embed(['x'])));
      expect(heldDuringEmbed.at(-1)).toBe(1);
    } finally {
      await f.close();
    }
  });

  it("a transaction's local settings hold in it, end with it, and refuse what engram does not set", async () => {
    const { db, close } = await backend.open();
    try {
      const read = (q: { query: Db['query'] }) =>
        q
          .query<{ s: string; e: string }>(
            `select current_setting('work_mem') as s, current_setting('enable_seqscan') as e`,
          )
          .then((r) => r.rows[0]);
      const before = await read(db);
      const inside = await db.transaction(read, { settings: { work_mem: '7777kB', enable_seqscan: 'off' } });
      expect(inside).toEqual({ s: '7777kB', e: 'off' });
      // Local to the transaction: the connection goes back to the pool as it was.
      for (let i = 0; i < 3; i++) expect(await read(db)).toEqual(before);
      // Rolled back with it too, and nothing inlined that is not a plain name and value.
      await expect(
        db.transaction(() => Promise.reject(new Error('no')), { settings: { work_mem: '8888kB' } }),
      ).rejects.toThrow('no');
      expect(await read(db)).toEqual(before);
      await expect(db.transaction(read, { settings: { work_mem: "1'; drop table x; --" } })).rejects.toThrow(
        /not a setting engram sets/,
      );
    } finally {
      await close();
    }
  });

  it('migration 002 upgrades a store that already holds reflection data (001 is never edited)', async () => {
    const { db, schema, close } = await backend.open();
    try {
      await migrate(db, { schema, dimensions: TEST_DIMENSIONS, log: silent, migrations: migrations.slice(0, 1) });
      // Rows as the 001 code wrote them (today's code writes item counts, which 001 lacks).
      const old = new MemoryDb(db, schema, silent);
      const t = tables(schema);
      const vector = fakeEmbedding('User likes tea', TEST_DIMENSIONS);
      const ns = ['memories', 'u1'];
      await db.query(`insert into ${t.namespaces} (namespace, version) values ($1, 1)`, [ns]);
      for (const key of ['k1', 'k2']) {
        await db.query(`insert into ${t.memories} (namespace, key, kind, value) values ($1, $2, 'memory', $3)`, [
          ns,
          key,
          JSON.stringify({ content: key }),
        ]);
        await db.query(`insert into ${t.vectors} (namespace, key, field, embedding) values ($1, $2, '$', $3::vector)`, [
          ns,
          key,
          db.vectorParam(vector),
        ]);
      }
      expect(
        (await migrate(db, { schema, dimensions: TEST_DIMENSIONS, log: silent, migrations: migrations.slice(0, 2) }))
          .applied,
      ).toEqual([2]);
      const items = await db.query<{ items: unknown }>(`select items from ${t.namespaces} where namespace = $1`, [ns]);
      expect(Number(items.rows[0]!.items)).toBe(2);
      // Today's reads run on today's schema: the later migrations apply over 002's result too.
      expect((await migrate(db, { schema, dimensions: TEST_DIMENSIONS, log: silent })).applied).toEqual(
        migrations.slice(2).map((_, i) => i + 3),
      );
      expect((await old.listNamespaces({ prefix: ['memories'], limit: 10, offset: 0 })).length).toBe(1);
      const search = (scope: { prefix: string[] } | { namespaces: string[][] }) =>
        old.search({ scope, vector, filter: [], limit: 10, offset: 0 }).then((hits) => hits.map((h) => h.key));
      expect((await search({ namespaces: [ns] })).sort()).toEqual(['k1', 'k2']);
      expect(await search({ prefix: ['memories'] })).toEqual(['k1', 'k2']);
    } finally {
      await close();
    }
  });
});

describe('embedded PGlite in a data folder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'engram-pglite-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps items across a restart, and refuses a second open of the same folder', async () => {
    const dataDir = join(dir, 'pgdata');
    const first = createPgliteDb(dataDir, silent);
    expect(() => createPgliteDb(dataDir, silent)).toThrow(PermanentError);
    expect(() => createPgliteDb(dataDir, silent)).toThrow(/in use by this process/);
    await migrate(first, { schema: 'engram', dimensions: TEST_DIMENSIONS, log: silent });
    const store = new MemoryDb(first, 'engram', silent);
    await store.apply({
      actor: 'test',
      writes: [
        {
          op: 'put',
          namespace: ['p'],
          key: 'k',
          kind: 'memory',
          value: { content: 'persisted' },
          ttl: null,
          fields: [],
        },
      ],
    });
    await first.close();

    const second = createPgliteDb(dataDir, silent);
    try {
      expect((await migrate(second, { schema: 'engram', dimensions: TEST_DIMENSIONS, log: silent })).applied).toEqual(
        [],
      );
      expect(await new MemoryDb(second, 'engram', silent).get(['p'], 'k')).toMatchObject({
        value: { content: 'persisted' },
        version: 1,
      });
    } finally {
      await second.close();
    }
  });
});
