import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
