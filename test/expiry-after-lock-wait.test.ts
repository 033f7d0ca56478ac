import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError } from '../src/errors.js';
import { tables } from '../src/store/sql.js';
import { openStore, pgBackend, type StoreFixture } from './helpers/backends.js';
import { TEST_DATABASE_URL } from './helpers/harness.js';

/**
 * A writer's `now()` is its BEGIN, and it may then wait for its namespace lock (behind a big
 * batch, an import, an erase) past an item's expiry. Expiry must be judged, and new expiries
 * set, on the clock once the lock is held: else a compare-and-set passes over an item every
 * reader already sees gone, and a put can come back already expired. A second connection holds
 * the namespace row so the wait is exact.
 */
describe('expiry after a wait for the namespace lock', () => {
  let f: StoreFixture;
  let holder: pg.Client;
  const ns = ['lock_wait', 'u1'];
  beforeAll(async () => {
    f = await openStore(pgBackend);
    holder = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await holder.connect();
  });
  afterAll(async () => {
    await holder?.end();
    await f?.close();
  });

  /** Runs `write` while the namespace is locked by another transaction for `ms`. */
  const behindLock = async <T>(ms: number, write: () => Promise<T>) => {
    await holder.query('begin');
    await holder.query(`select 1 from ${tables(f.schema).namespaces} where namespace = $1 for update`, [ns]);
    const settled = write().then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    await new Promise((r) => setTimeout(r, ms));
    await holder.query('commit');
    return settled;
  };

  it('refuses an ifVersion put over an item that expired while it waited, and writes nothing', async () => {
    await f.store.put({ namespace: ns, key: 'a', value: { content: 'secret v1' }, ttl: 800 });
    const res = await behindLock(1_500, () =>
      f.store.put({ namespace: ns, key: 'a', value: { content: 'v2' }, ifVersion: 1, ttl: 60_000 }),
    );
    expect('error' in res && res.error).toBeInstanceOf(ConflictError);
    const history = await f.store.history({ namespace: ns, key: 'a', consistency: 'primary' });
    expect(history.map((h) => [h.op, h.version])).toEqual([['insert', 1]]);
    expect(await f.store.get({ namespace: ns, key: 'a' })).toBeNull();
  });

  it('gives a put that waited past its TTL the full TTL from when it wrote', async () => {
    const res = await behindLock(1_200, () =>
      f.store.put({ namespace: ns, key: 'b', value: { content: 'new' }, ttl: 1_000 }),
    );
    expect('value' in res).toBe(true);
    expect(await f.store.get({ namespace: ns, key: 'b', refreshTtl: false })).toMatchObject({
      value: { content: 'new' },
    });
  });

  it("makes a reflection's kept-TTL update of an item that expired while it waited a conflict", async () => {
    await f.store.put({ namespace: ns, key: 'c', value: { content: 'User likes tea' }, ttl: 800 });
    const res = await behindLock(1_500, () =>
      f.memories.apply({
        actor: 'reflection:test',
        writes: [
          {
            op: 'put',
            namespace: ns,
            key: 'c',
            kind: 'memory',
            value: { content: 'User likes green tea' },
            fields: [],
            ttl: 'keep',
            ifVersion: 1,
          },
        ],
      }),
    );
    expect('value' in res && res.value.status).toBe('conflict');
  });
});
