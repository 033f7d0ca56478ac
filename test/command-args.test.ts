import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteKeys, TEST_DATABASE_URL, TEST_DIMENSIONS, TEST_REDIS_URL, uniqueName } from './helpers/harness.js';
import { jobs } from './helpers/jobs-cli.js';

/** A one-shot command (`workers/<name>.ts`) as an operator runs it: its exit code and output. */
function run(name: string, args: string[], env: Record<string, string>) {
  return promisify(execFile)(process.execPath, ['--import', 'tsx', `workers/${name}.ts`, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    timeout: 30_000,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

/**
 * A mistyped flag ran the command's default: `store:ann-index -- --dorp` built the index it was
 * asked to drop, `--maintenance-work-mem=2GB` built with 1GB, `migrate -- --help` migrated,
 * `jobs failed reflection-1` listed every queue.
 */
describe("the operators' commands refuse what they do not take", () => {
  const schema = uniqueName('cmdargs');
  const env = { DATABASE_URL: TEST_DATABASE_URL, DATABASE_SCHEMA: schema, EMBEDDING_DIMENSIONS: `${TEST_DIMENSIONS}` };
  const pool = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 1 });
  const schemaExists = async () =>
    (await pool.query('select 1 from pg_namespace where nspname = $1', [schema])).rowCount === 1;
  const annIndex = async () =>
    (await pool.query(`select indexname from pg_indexes where schemaname = $1 and indexname like '%hnsw'`, [schema]))
      .rowCount;
  afterAll(async () => {
    await pool.query(`drop schema if exists "${schema}" cascade`);
    await pool.end();
  });

  it('migrate: --help prints the usage and migrates nothing; an unknown flag or argument is refused', async () => {
    const help = await run('migrate', ['--help'], env);
    expect([help.code, help.stdout]).toEqual([0, expect.stringMatching(/^usage: npm run migrate\n/)]);
    for (const args of [['--dry-run'], ['now']]) {
      const refused = await run('migrate', args, env);
      expect([refused.code, refused.stderr], args.join(' ')).toEqual([
        1,
        expect.stringMatching(/^engram migrate: .*\nusage: npm run migrate\n/),
      ]);
    }
    expect(await schemaExists()).toBe(false);
    expect((await run('migrate', [], env)).code).toBe(0);
    expect(await schemaExists()).toBe(true);
  }, 60_000);

  it('store:ann-index: a mistyped flag or a bad size builds nothing; the right ones build and drop', async () => {
    for (const args of [
      ['--dorp'],
      ['--maintenance-work-mem'],
      ['--maintenance-work-mem=lots'],
      ['--drop', '--maintenance-work-mem', '2GB'],
      ['build'],
    ]) {
      const refused = await run('ann-index', args, env);
      expect([refused.code, refused.stderr], args.join(' ')).toEqual([
        1,
        expect.stringMatching(/^engram ann-index: .*\nusage: npm run store:ann-index/),
      ]);
      expect(await annIndex(), args.join(' ')).toBe(0);
    }
    expect((await run('ann-index', ['--maintenance-work-mem=64MB'], env)).code).toBe(0);
    expect(await annIndex()).toBe(1);
    expect((await run('ann-index', ['--drop'], env)).code).toBe(0);
    expect(await annIndex()).toBe(0);
  }, 90_000);

  describe('jobs', () => {
    const prefix = `engram-test-${uniqueName('jobsargs')}`;
    const vars = { REDIS_URL: TEST_REDIS_URL, ENGRAM_PREFIX: prefix };
    beforeAll(async () => {
      expect((await jobs(['counts'], vars)).code).toBe(0);
    });
    afterAll(() => deleteKeys(TEST_REDIS_URL, prefix));

    it('refuses an argument or a flag its command does not take, naming it', async () => {
      for (const [args, problem] of [
        [['failed', 'reflection-1'], 'failed takes no argument "reflection-1"'],
        [['counts', '--queue', 'reflection'], 'counts takes no --queue'],
        [['parked', '--all'], 'parked takes no --all'],
        [['failed', '--job', '1'], 'failed takes no --job'],
        [['retry', '--job', '1', '--all'], 'retry takes one of --job <id>, --all or --thread <id>'],
        [
          ['retry', '--thread', 't', '--queue', 'reflection'],
          "retry --thread finds the thread's queue itself: drop --queue",
        ],
        [['parked', '--thread', 't'], 'parked takes no --thread'],
        [['count'], 'no command "count"'],
        [[], 'a command is needed'],
      ] as const) {
        const refused = await jobs([...args], vars);
        expect([refused.code, refused.stdout, refused.stderr], args.join(' ')).toEqual([
          1,
          '',
          expect.stringMatching(
            new RegExp(`^engram jobs: ${problem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*\nusage:`),
          ),
        ]);
      }
    }, 60_000);

    it('--help prints the usage with status 0', async () => {
      const help = await jobs(['--help'], vars);
      expect([help.code, help.stdout]).toEqual([0, expect.stringMatching(/^usage: npm run jobs -- <command>/)]);
    });
  });
});
