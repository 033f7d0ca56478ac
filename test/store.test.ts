import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../src/store/db.js';
import { MemoryDb } from '../src/store/memory-db.js';
import { migrate } from '../src/store/migrate.js';
import { migrations } from '../src/store/migrations/index.js';
import type { ChangeSet, Write } from '../src/store/change-set.js';
import { fakeEmbedding } from './fake-model/embedding.js';
import { backends, silent as log } from './helpers/backends.js';
import { TEST_DIMENSIONS } from './helpers/harness.js';
import { tables } from '../src/store/sql.js';

const vec = (text: string) => fakeEmbedding(text, TEST_DIMENSIONS);
const ns = ['memories', 'u1'];

describe.each(backends)('reflection writes on $name', (backend) => {
  let db: Db;
  let schema: string;
  let store: MemoryDb;
  let close: () => Promise<void>;
  const change = (over: Partial<ChangeSet> & { threadId?: string }): ChangeSet => ({
    threadId: over.threadId ?? 'th',
    once: { cursor: { threadId: over.threadId ?? 'th', expected: null, next: '1-0' } },
    actor: 'test',
    reads: [{ namespace: ns, version: 0 }],
    writes: [],
    ...over,
  });
  const insert = (key: string, content: string, ttl: number | null = null): Write => ({
    op: 'put',
    namespace: ns,
    key,
    kind: 'memory',
    value: { content },
    fields: [{ field: '$', text: content, vector: vec(content) }],
    ttl,
  });
  const search = (text: string) =>
    store.search({ scope: { namespaces: [ns] }, vector: vec(text), filter: [], limit: 10, offset: 0 });

  beforeAll(async () => {
    ({ db, schema, close } = await backend.open());
    store = new MemoryDb(db, schema, log);
    // Several processes starting at once: the advisory lock lets exactly one apply each migration.
    const runs = await Promise.all([1, 2, 3].map(() => migrate(db, { schema, dimensions: TEST_DIMENSIONS, log })));
    // (Which process applies which migration is a race; each one is applied exactly once.)
    expect(runs.flatMap((r) => r.applied).sort((a, b) => a - b)).toEqual(migrations.map((m) => m.id));
  });
  afterAll(async () => close?.());

  it('refuses to open a schema made for another embedding size', async () => {
    await expect(migrate(db, { schema, dimensions: TEST_DIMENSIONS + 1, log })).rejects.toThrow(
      /created for 64 dimensions/,
    );
  });

  it('commits writes, history and the cursor together, and applies a change set only once', async () => {
    const twoInserts = change({
      writes: [insert('k-ramen', 'User loves ramen'), insert('k-tennis', 'User plays tennis')],
    });
    expect(await store.apply(twoInserts)).toMatchObject({
      status: 'applied',
      counts: { inserted: 2, updated: 0, deleted: 0, expired: 0 },
    });
    expect(await store.cursor('th')).toBe('1-0');
    // The same change set again (a retried job): the cursor moved, nothing is written.
    expect(await store.apply(twoInserts)).toEqual({ status: 'duplicate' });
    expect((await store.history(ns, 'k-ramen')).map((h) => h.op)).toEqual(['insert']);

    const hits = await search('ramen noodles');
    expect(hits.map((h) => h.key)).toEqual(['k-ramen', 'k-tennis']);
    expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score!);
  });

  it('a namespace changed since it was read is a conflict, and nothing is written', async () => {
    const stale = change({
      threadId: 'th-2',
      reads: [{ namespace: ns, version: 0 }],
      writes: [{ op: 'delete', namespace: ns, key: 'k-tennis', ifVersion: 1 }],
    });
    expect(await store.apply(stale)).toEqual({
      status: 'conflict',
      conflicts: [{ namespace: ns, expected: 0, actual: 1 }],
    });
    expect(await store.get(ns, 'k-tennis')).not.toBeNull();
    expect(await store.cursor('th-2')).toBeNull();
  });

  /** One reflection that inserts one memory, at the namespace's current version. */
  const insertOne = async (threadId: string, key: string, content: string, ttlMs: number | null) => {
    const [version] = await store.namespaceVersions([ns]);
    const result = await store.apply(
      change({ threadId, reads: [{ namespace: ns, version: version! }], writes: [insert(key, content, ttlMs)] }),
    );
    expect(result.status).toBe('applied');
  };

  it('sweeps expired memories with an expire history row, and never returns them', async () => {
    await insertOne('th-3', 'k-old', 'User is in Paris this week', 3_600_000);
    // Expiries come from the database's clock: move this one into the past there.
    await db.query(
      `update ${tables(store.schema).memories} set expires_at = now() - interval '1 second' where namespace = $1 and key = 'k-old'`,
      [ns],
    );
    expect(await store.get(ns, 'k-old')).toBeNull();
    expect((await search('Paris')).map((h) => h.key)).not.toContain('k-old');
    expect(await store.sweepExpired('test-sweeper')).toBe(1);
    expect((await store.history(ns, 'k-old')).map((h) => [h.op, h.actor])).toEqual([
      ['insert', 'test'],
      ['expire', 'test-sweeper'],
    ]);
  });

  it('a key written again after it expired continues its versions, so a stale ifVersion cannot match', async () => {
    // k-old was inserted at version 1 and swept by the test above; a profile's fixed key is the
    // case that meets this: the reflection inserts it anew.
    await insertOne('th-4', 'k-old', 'User is in Rome', null);
    expect((await store.get(ns, 'k-old'))?.version).toBe(2);
    expect((await store.history(ns, 'k-old')).map((h) => [h.op, h.version])).toEqual([
      ['insert', 1],
      ['expire', 1],
      ['insert', 2],
    ]);
  });
});
