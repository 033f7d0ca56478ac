import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tables } from '../src/store/sql.js';
import { openStore, pgBackend, randomUnitVector, type StoreFixture } from './helpers/backends.js';
import { TEST_DATABASE_URL, waitFor } from './helpers/harness.js';

/**
 * `npm run store:ann-index` after a build that did not finish (cancelled, out of memory, the
 * command killed with its backend): Postgres keeps the CONCURRENTLY build's index, invalid. Run
 * again, the command must build a valid one, not report the invalid one ready.
 */
describe('the ANN index command after a failed build', () => {
  let f: StoreFixture;
  let admin: pg.Client;
  beforeAll(async () => {
    f = await openStore(pgBackend);
    f.embedder.fixed.set('fact', randomUnitVector(1));
    await f.store.batch([{ op: 'put', namespace: ['ann', 'u1'], key: 'k', value: { content: 'fact' } }]);
    admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await f?.close();
  });

  const validity = async () => {
    const res = await admin.query<{ valid: boolean }>(
      'select indisvalid as valid from pg_index where indexrelid = to_regclass($1)',
      [tables(f.schema).annIndex],
    );
    return res.rows[0]?.valid;
  };

  it('drops the invalid index a cancelled build left and builds it again', async () => {
    // A writer's open transaction holds the build in its wait for older writers, after it has
    // made the index (invalid); cancelling it there is what a failed build leaves.
    const writer = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await writer.connect();
    try {
      await writer.query('begin');
      await writer.query(`lock table ${tables(f.schema).vectors} in row exclusive mode`);
      const build = f.memories.createAnnIndex().then(
        () => null,
        (err: Error) => err,
      );
      const pid = await waitFor(async () => {
        const res = await admin.query<{ pid: number }>(
          `select pid from pg_stat_activity where query ilike 'create index concurrently%' and query like $1 and wait_event_type = 'Lock'`,
          [`%${f.schema}%`],
        );
        return res.rows[0]?.pid;
      });
      await admin.query('select pg_cancel_backend($1)', [pid]);
      expect((await build)?.message).toMatch(/canceling statement/);
    } finally {
      await writer.query('rollback');
      await writer.end();
    }
    expect(await validity()).toBe(false);

    await f.memories.createAnnIndex();
    expect(await validity()).toBe(true);
  }, 30_000);
});
