/**
 * npm run bench:statements [-- --log /var/log/postgresql/postgresql-15-main.log] [-- --only 4 --large 100000]
 *
 * Where a reflection's Postgres time goes, statement by statement: turns on
 * `log_min_duration_statement = 0` (ALTER SYSTEM, so a superuser on a Postgres of one's own),
 * runs `bench/formation.ts` (part 1 unless told otherwise), turns it off again, and reads
 * Postgres' log of the run: p50 of each statement's parse, bind (where Postgres plans) and
 * execute, for the statements that ran at least 100 times. A named statement that is not parsed
 * again, or whose bind is short, shows a prepared statement at work. Not a test.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import pg from 'pg';
import { percentile } from './stats.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? undefined : process.argv[i + 1];
};
const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const formationArgs = process.argv.slice(2).filter((a, i, all) => a !== '--log' && all[i - 1] !== '--log');

const admin = new pg.Client({ connectionString: url });
await admin.connect();
const versionNum = (await admin.query<{ server_version_num: string }>('show server_version_num')).rows[0];
const version = Math.floor(Number(versionNum?.server_version_num) / 10_000);
// Debian's pg_ctlcluster sends a cluster's log here when logging_collector is off.
const logPath = arg('log') ?? `/var/log/postgresql/postgresql-${version}-main.log`;
const start = statSync(logPath).size;
await admin.query('alter system set log_min_duration_statement = 0');
await admin.query('select pg_reload_conf()');
let run;
try {
  run = spawnSync('npx', ['tsx', 'bench/formation.ts', ...(formationArgs.length ? formationArgs : ['--only', '1'])], {
    encoding: 'utf8',
  });
} finally {
  await admin.query('alter system reset log_min_duration_statement');
  await admin.query('select pg_reload_conf()');
  await admin.end();
}
process.stdout.write(run.stdout);
if (run.status !== 0) throw new Error(`bench/formation.ts failed: ${run.stderr}`);

const fd = openSync(logPath, 'r');
const buf = Buffer.alloc(statSync(logPath).size - start);
readSync(fd, buf, 0, buf.length, start);
closeSync(fd);
const lines = buf.toString('utf8').split('\n');

// `duration: 0.123 ms  bind engram_ab12/C_3: with nss as (...` and its continuation lines.
const timings = new Map<string, number[]>();
for (let i = 0; i < lines.length; i++) {
  const m = /duration: ([\d.]+) ms\s+(parse|bind|execute|statement)[^:]*:\s*(.*)$/.exec(lines[i] as string);
  if (!m) continue;
  let text = m[3] as string;
  for (let j = i + 1; j < lines.length && lines[j]?.startsWith('\t') && text.length < 200; j++)
    text += ` ${(lines[j] as string).trim()}`;
  const key = `${(m[2] as string).padEnd(9)} ${text
    .replace(/"bench_\w+"/g, 'S')
    .replace(/\s+/g, ' ')
    .slice(0, 70)}`;
  const list = timings.get(key) ?? [];
  list.push(Number(m[1]));
  timings.set(key, list);
}
const rows = [...timings].filter(([, v]) => v.length >= 100).map(([k, v]) => [percentile(v, 50), v.length, k] as const);
rows.sort((a, b) => b[0] - a[0]);
process.stdout.write('\nPostgres time per statement of the run above (its log; S is the bench schema)\n');
process.stdout.write('p50 (ms)   runs   step      statement\n');
for (const [ms, n, k] of rows) process.stdout.write(`${ms.toFixed(3).padStart(8)}  ${String(n).padStart(5)}   ${k}\n`);
