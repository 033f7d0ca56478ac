import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tables } from '../src/store/sql.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { send } from './helpers/hostile.js';

/**
 * Items stored before times were bounded on their UTC instant could hold a time in year 10000 (or
 * before year 1) that no answer can carry: every read of them was a 500. Migration 11 moves such
 * times to the nearest bound, and the items read again, document and version unchanged.
 */
describe('times stored outside the years 0001-9999', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'] });
  });
  afterAll(async () => h?.stop());

  it('are moved to the nearest bound by migration 11, and the item reads again', async () => {
    const put = await send(
      h,
      'PUT',
      '/v1/store/items',
      JSON.stringify({
        namespace: ['bt', 'u'],
        key: 'k',
        value: { content: 'kept' },
        validFrom: '2020-01-01T00:00:00Z',
      }),
    );
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const t = tables(h.runtime.store.schema);
    // What a put of validFrom 9999-12-31T23:59:59-15:59, or an import of such times, stored before.
    await h.runtime.db.query(
      `update ${t.memories} set valid_from = '10000-01-01 15:58:59+00', invalid_at = '10000-02-01 00:00:00+00',
              expires_at = '10000-03-01 00:00:00+00', created_at = '0001-06-01 00:00:00+00 BC'`,
    );
    await h.runtime.db.query(`update ${t.history} set created_at = '10000-01-01 00:00:00+00'`);
    await h.runtime.db.query(`delete from ${t.migrations} where id = 11`);

    const { applied } = await h.runtime.migrate();
    expect(applied).toEqual([11]);

    const read = await send(h, 'GET', '/v1/store/items?namespace=bt&namespace=u&key=k');
    expect(read.status, JSON.stringify(read.body)).toBe(200);
    expect(read.body.item).toMatchObject({
      value: { content: 'kept' },
      version: 1,
      createdAt: '0001-01-01T00:00:00.000Z',
      validFrom: '9999-12-31T23:59:59.999Z',
      invalidAt: '9999-12-31T23:59:59.999Z',
      expiresAt: '9999-12-31T23:59:59.999Z',
    });
    const history = await send(h, 'GET', '/v1/store/items/history?namespace=bt&namespace=u&key=k');
    expect(history.status, JSON.stringify(history.body)).toBe(200);
    expect(history.body.history).toHaveLength(1);
    expect(history.body.history[0].at).toBe('9999-12-31T23:59:59.999Z');
    const exported = await fetch(`${h.url}/v1/export?namespace=bt&history=true`);
    expect(exported.status).toBe(200);
    const lines = (await exported.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.type)).toEqual(['export', 'item', 'history']);
    expect(lines[1]).toMatchObject({ validFrom: '9999-12-31T23:59:59.999Z', createdAt: '0001-01-01T00:00:00.000Z' });
  });
});
