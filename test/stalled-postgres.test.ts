import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PgDb } from '../src/store/pool.js';
import { startHarness, TEST_DATABASE_URL, type Harness } from './helpers/harness.js';
import { StallProxy } from './helpers/stall-proxy.js';

/**
 * A Postgres that accepts connections but stops answering: a store read gets a 503 naming
 * Postgres once DATABASE_QUERY_TIMEOUT_MS (plus the client's 2 s) has passed, instead of waiting
 * for good; /readyz says which check failed, and nothing about where Postgres is.
 */
describe('a stalled Postgres', () => {
  const proxy = new StallProxy(new URL(TEST_DATABASE_URL));
  let port: number;
  let h: Harness;
  beforeAll(async () => {
    const url = await proxy.start();
    port = Number(new URL(url).port);
    h = await startHarness({ roles: ['api'], env: { DATABASE_URL: url, DATABASE_QUERY_TIMEOUT_MS: '300' } });
  });
  afterAll(async () => {
    proxy.resume();
    if (!proxy.listening) await proxy.start(port);
    await h?.stop();
    await proxy.stop();
  });
  const get = () => fetch(`${h.url}/v1/store/items?namespace=n1&key=k1`);

  it('a store read answers 503 naming Postgres, and reads again once it answers', async () => {
    expect((await get()).status).toBe(404);
    proxy.stall();
    try {
      const res = await get();
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string }).error).toMatch(/Postgres\) is not reachable/);
      const ready = await fetch(`${h.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ ok: false, checks: { redis: 'ok', postgres: 'timeout' } });
    } finally {
      proxy.resume();
    }
    expect((await get()).status).toBe(404);
    expect(await (await fetch(`${h.url}/readyz`)).json()).toEqual({
      ok: true,
      checks: { redis: 'ok', postgres: 'ok' },
    });
  });

  it('/readyz names a refused Postgres by its check only: no host, port or driver message', async () => {
    await proxy.stop();
    try {
      const ready = await fetch(`${h.url}/readyz`);
      const text = await ready.text();
      expect([ready.status, JSON.parse(text)]).toEqual([
        503,
        { ok: false, checks: { redis: 'ok', postgres: 'error' } },
      ]);
      expect(text).not.toContain(String(port));
    } finally {
      await proxy.start(port);
    }
  });
});

/**
 * A pool whose every connection stays busy past the wait for one: a 503 that says so, not that
 * Postgres is unreachable (an operator would look at the network instead of the pool).
 */
describe('a Postgres pool with every connection busy', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], env: { DATABASE_POOL_MAX: '1' } });
  });
  afterAll(async () => h?.stop());

  it('answers a store read 503 naming the busy pool, and reads again once a connection is free', async () => {
    const get = () => fetch(`${h.url}/v1/store/items?namespace=n1&key=k1`);
    expect((await get()).status).toBe(404);
    // Something holds the only connection past the pool's wait (5 s).
    const client = await (h.runtime.db as PgDb).pool.connect();
    try {
      const res = await get();
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string }).error).toBe(
        'the memory store (Postgres) had no free connection in time: every connection of this process (DATABASE_POOL_MAX) was busy; retry later',
      );
    } finally {
      client.release();
    }
    expect((await get()).status).toBe(404);
  }, 20_000);
});
