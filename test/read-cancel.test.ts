import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdkClient, startHarness, TEST_DATABASE_URL, waitFor, type Harness } from './helpers/harness.js';

/**
 * A client that gives up on a read (a chat app's own timeout, then its retry) used to leave the
 * read running on Postgres to its statement_timeout, 30 s, holding a pooled connection for
 * nobody: a few such retries and every connection of the pool waited. Now the read's statement
 * is cancelled when its client goes away. Each read below waits on a lock an outside
 * transaction holds on every table of the schema, so only a cancel can end it while the lock is
 * held.
 */
describe('a read whose client goes away', () => {
  let h: Harness;
  const locker = new pg.Client({ connectionString: TEST_DATABASE_URL });
  // Its own client: in the locker's transaction, pg_stat_activity would answer as it first did.
  const watcher = new pg.Client({ connectionString: TEST_DATABASE_URL });
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'] });
    await Promise.all([locker.connect(), watcher.connect()]);
    await h.runtime.storeApi.put({ namespace: ['memories', 'u1'], key: 'tea', value: { content: 'User likes tea' } });
  });
  afterAll(async () => {
    await Promise.all([locker.end(), watcher.end()]);
    await h?.stop();
  });

  /** engram's statements on this schema that wait for a lock (the reads the lock holds up). */
  async function waiting(): Promise<number> {
    const res = await watcher.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity
        where application_name = 'engram' and wait_event_type = 'Lock' and position($1 in query) > 0`,
      [h.env.DATABASE_SCHEMA],
    );
    return res.rows[0]?.n ?? 0;
  }

  const reads: [string, string, string, unknown][] = [
    ['store search', 'POST', '/v1/store/items/search', { namespacePrefix: ['memories'], query: 'tea' }],
    ['memories search', 'GET', '/v1/memories/search?namespace=memories&namespace=u1&query=tea', undefined],
    ['recall', 'POST', '/v1/recall', { context: { userId: 'u1' }, query: 'tea' }],
    ['history', 'GET', '/v1/store/items/history?namespace=memories&namespace=u1&key=tea', undefined],
    ['namespaces', 'POST', '/v1/store/namespaces', { prefix: ['memories'] }],
  ];

  /** Locks every table of the schema in the locker's transaction, until it rolls back. */
  async function lockAll(): Promise<void> {
    const tables = await locker.query<{ t: string }>(
      `select format('%I.%I', schemaname, tablename) as t from pg_tables where schemaname = $1`,
      [h.env.DATABASE_SCHEMA],
    );
    await locker.query('begin');
    await locker.query(`lock table ${tables.rows.map((r) => r.t).join(', ')} in access exclusive mode`);
  }

  it.each(reads)('stops on Postgres (%s) while the lock it waits for is still held', async (_, method, path, body) => {
    await lockAll();
    try {
      const gone = new AbortController();
      const request = fetch(`${h.url}${path}`, {
        method,
        signal: gone.signal,
        ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      });
      request.catch(() => undefined);
      await waitFor(async () => (await waiting()) >= 1);
      gone.abort();
      await expect(request).rejects.toThrow();
      // Cancelled at once, not at the statement timeout: the lock is still held here.
      await waitFor(async () => (await waiting()) === 0, { timeoutMs: 5_000 });
    } finally {
      await locker.query('rollback');
    }
    // The pool is whole: the next read is answered.
    const res = await fetch(`${h.url}/v1/store/items/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ namespacePrefix: ['memories'] }),
    });
    expect(res.status).toBe(200);
  });

  it('counts the reads given up above as aborted, not among the errors', async () => {
    const text = await h.runtime.metrics.registry.metrics();
    for (const op of ['search', 'recall', 'store-search'])
      expect(text).toMatch(
        new RegExp(`^engram_search_duration_seconds_count\\{op="${op}",outcome="aborted"\\} 1$`, 'm'),
      );
    expect(text).not.toMatch(/^engram_search_duration_seconds_count\{op="[^"]+",outcome="error"\}/m);
  });

  it("stops on Postgres when an SDK caller's signal gives up its read", async () => {
    const sdk = sdkClient(h);
    try {
      // The client's first embedding reads the store's size: done before the lock.
      await sdk.search({ namespace: ['memories', 'u1'], query: 'tea' });
      const calls = [
        (signal: AbortSignal) => sdk.search({ namespace: ['memories', 'u1'], query: 'tea' }, { signal }),
        (signal: AbortSignal) => sdk.recall({ context: { userId: 'u1' }, query: 'tea' }, { signal }),
        // The store client's reads, LangGraph's call shapes with the signal last.
        (signal: AbortSignal) => sdk.store.get(['memories', 'u1'], 'tea', {}, { signal }),
        (signal: AbortSignal) => sdk.store.search(['memories'], { query: 'tea' }, { signal }),
        (signal: AbortSignal) => sdk.store.listNamespaces({ prefix: ['memories'] }, { signal }),
        (signal: AbortSignal) => sdk.store.history(['memories', 'u1'], 'tea', {}, { signal }),
        (signal: AbortSignal) =>
          sdk.store.batch([{ op: 'get', namespace: ['memories', 'u1'], key: 'tea' }], { signal }),
      ];
      for (const call of calls) {
        await lockAll();
        try {
          const gone = new AbortController();
          const read = call(gone.signal);
          read.catch(() => undefined);
          await waitFor(async () => (await waiting()) >= 1);
          const reason = new Error('the user left');
          gone.abort(reason);
          // The caller's own reason, not an SDK error wrapping it.
          await expect(read).rejects.toBe(reason);
          await waitFor(async () => (await waiting()) === 0, { timeoutMs: 5_000 });
        } finally {
          await locker.query('rollback');
        }
      }
    } finally {
      await sdk.close();
    }
  });
});
