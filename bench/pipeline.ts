/**
 * npm run bench:pipeline -- [--threads 100] [--turns 4] [--model-ms 1000] [--workers 1,2,4]
 *   [--seconds 20] [--debounce-ms 2000] [--gap-ms debounce/2] [--concurrency auto] [--burst auto]
 *   [--poll-ms 20]
 * Full scale (issue 18): --threads 1000 --turns 4 --model-ms 1000 --workers 1,2,4
 *
 * The split deployment on one machine, against the real Redis and Postgres: an API process, a
 * scheduler, and 1, 2 or 4 reflection processes (`workers/*.ts`, as deployed), with a stand-in
 * model of fixed latency in its own process. For each count of reflection processes:
 *  1. `threads` live threads send sessions of `turns` turns over HTTP; figures: turns/s accepted,
 *     freshness (last turn's 202 -> its memory returned by search, minus debounce and model
 *     latency: engram's share), extraction calls per session and kind;
 *  2. a backlog of one-turn sessions: reflections/s.
 * Beside them, a Redis PING, a Postgres `select 1` and GET /healthz, sampled during the load.
 * Everything it made (processes, schema, Redis keys, temp files) goes at the end or on Ctrl-C.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { deleteKeys } from '../test/helpers/harness.js';
import { httpClient, type Http } from './pipeline-http.js';
import { runSessions } from './pipeline-load.js';
import { burst, measureBaselines, sampleBaselines } from './pipeline-phases.js';
import {
  freePort,
  onceCleanup,
  runOnce,
  startModel,
  startRole,
  stopRoles,
  waitHealthy,
  type ModelProcess,
  type Role,
} from './pipeline-procs.js';
import { rows, type PhaseInput, type Settings } from './pipeline-report.js';
import { flag, ms, summarize, table } from './stats.js';

const list = (name: string, fallback: number[]) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : (process.argv[i + 1] ?? '').split(',').map(Number);
};
const THREADS = flag('threads', 100);
const TURNS = flag('turns', 4);
const MODEL_MS = flag('model-ms', 1000);
const WORKERS = list('workers', [1, 2, 4]);
const SECONDS = flag('seconds', 20);
// docs/decisions.md (bench:pipeline): the share subtracts the window, so its length changes no
// figure; it must only exceed the longest gap between a session's turns (1.5 x gap) with room
// for the driver's own lag on a loaded machine, so that a session is one burst.
const DEBOUNCE_MS = flag('debounce-ms', 2_000);
const GAP_MS = flag('gap-ms', DEBOUNCE_MS / 2);
const POLL_MS = flag('poll-ms', 20);
// Sessions settle at threads / (turns x gap) per second; each holds a slot for the model's
// latency and a little more. Sized so that the fewest processes have twice the slots the load
// keeps busy on average (sessions end at random moments, not evenly): freshness then measures
// engram, not a queue of sessions waiting for a slot (the backlog phase measures that ceiling).
const SETTLE_PER_S = THREADS / ((TURNS * GAP_MS) / 1000);
const CONCURRENCY = flag(
  'concurrency',
  Math.max(8, Math.ceil((2 * SETTLE_PER_S * (MODEL_MS + 100)) / 1000 / Math.min(...WORKERS))),
);
const BURST = flag('burst', Math.max(200, 3 * Math.max(...WORKERS) * CONCURRENCY));
const KINDS = ['memory', 'preference'];
if (SECONDS * 1000 < 2 * TURNS * GAP_MS)
  throw new Error(`--seconds must cover two sessions (${(2 * TURNS * GAP_MS) / 1000} s): the first is the ramp-up`);
if (WORKERS.some((w) => !Number.isInteger(w) || w < 1)) throw new Error('--workers takes counts such as 1,2,4');

const id = `bench_pipe_${Date.now().toString(36)}`;
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const prefix = `engram-${id}`;
const dir = mkdtempSync(join(tmpdir(), 'engram-pipeline-'));
const logOf = (name: string) => join(dir, `${name}.log`);
const kindsFile = join(dir, 'kinds.json');
const document = { type: 'object', properties: { content: { type: 'string' } }, required: ['content'] };
writeFileSync(
  kindsFile,
  JSON.stringify({
    kinds: KINDS.map((name) => ({
      name,
      description: `A ${name} of the user`,
      namespace: [name === 'memory' ? 'memories' : `${name}s`, '{userId}'],
      schema: document,
    })),
  }),
);

const redis = new Redis(REDIS_URL);
const db = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
let model: ModelProcess | null = null;
const roles: Role[] = [];
let http: Http | null = null;
const cleanup = onceCleanup(async () => {
  await stopRoles(roles);
  await model?.stop();
  http?.close();
  await db.query(`drop schema if exists "${id}" cascade`).catch(() => undefined);
  await deleteKeys(REDIS_URL, prefix).catch(() => undefined);
  await db.end();
  redis.disconnect();
  const errors = roles.flatMap((r) => {
    const lines = (() => {
      try {
        return readFileSync(logOf(r.name), 'utf8').split('\n');
      } catch {
        return [];
      }
    })();
    return lines.filter((l) => /"level":(40|50|60)/.test(l));
  });
  if (errors.length) process.stdout.write(`\n${errors.length} warnings/errors logged, first: ${errors[0]}\n`);
  rmSync(dir, { recursive: true, force: true });
});

const out = (line = '') => process.stdout.write(`${line}\n`);
const settings: Settings = {
  threads: THREADS,
  turns: TURNS,
  gapMs: GAP_MS,
  debounceMs: DEBOUNCE_MS,
  modelMs: MODEL_MS,
  concurrency: CONCURRENCY,
  kinds: KINDS,
};
try {
  out(
    `bench:pipeline (${new Date().toISOString()}, node ${process.version}, ${cpus().length} CPUs, load average ${loadavg()[0]?.toFixed(1)} at start)`,
  );
  out(
    `${THREADS} live threads, sessions of ${TURNS} turns ${GAP_MS} ms apart on average for ${SECONDS} s, DEBOUNCE_MS ${DEBOUNCE_MS}, model ${MODEL_MS} ms, ` +
      `${KINDS.length} kinds, REFLECTION_CONCURRENCY ${CONCURRENCY}, backlog ${BURST} sessions, reflection processes ${WORKERS.join(', ')}`,
  );
  model = await startModel(MODEL_MS);
  const vars: Record<string, string> = {
    REDIS_URL,
    DATABASE_URL,
    DATABASE_SCHEMA: id,
    ENGRAM_PREFIX: prefix,
    OPENAI_API_KEY: 'bench',
    OPENAI_BASE_URL: model.url,
    EMBEDDING_DIMENSIONS: '256',
    DEBOUNCE_MS: String(DEBOUNCE_MS),
    MAX_WAIT_MS: String(Math.max(60_000, 10 * DEBOUNCE_MS)),
    REFLECTION_CONCURRENCY: String(CONCURRENCY),
    ENGRAM_KINDS_FILE: kindsFile,
    LOG_LEVEL: 'info',
  };
  await runOnce('workers/migrate.ts', vars, logOf('migrate'));
  const apiPort = await freePort();
  const schedulerPort = await freePort();
  roles.push(startRole('api', 'workers/api.ts', { ...vars, PORT: String(apiPort) }, logOf('api')));
  roles.push(
    startRole(
      'scheduler',
      'workers/scheduler.ts',
      { ...vars, METRICS_PORT: String(schedulerPort) },
      logOf('scheduler'),
    ),
  );
  const base = `http://127.0.0.1:${apiPort}`;
  await waitHealthy(roles[0] as Role, `${base}/healthz`);
  await waitHealthy(roles[1] as Role, `http://127.0.0.1:${schedulerPort}/healthz`);
  http = httpClient(base, 64);
  const idle = await measureBaselines(redis, db, http, 300);
  out(
    `idle floors (p50 / p99): PING ${ms(summarize(idle.ping).p50)} / ${ms(summarize(idle.ping).p99)}, select 1 ${ms(summarize(idle.select1).p50)} / ${ms(summarize(idle.select1).p99)}, GET /healthz ${ms(summarize(idle.healthz).p50)} / ${ms(summarize(idle.healthz).p99)}`,
  );

  type Row = Record<string, string | number>;
  const tables = { load: [] as Row[], freshness: [] as Row[], calls: [] as Row[], throughput: [] as Row[] };
  const targets: string[] = [];
  for (const workers of WORKERS) {
    const procs: Role[] = [];
    for (let i = 0; i < workers; i++) {
      const port = await freePort();
      const name = `reflection-${workers}-${i}`;
      procs.push(startRole(name, 'workers/reflection.ts', { ...vars, METRICS_PORT: String(port) }, logOf(name)));
      roles.push(procs[i] as Role);
      await waitHealthy(procs[i] as Role, `http://127.0.0.1:${port}/healthz`);
    }
    out(`\n${workers} reflection process(es) up: ${SECONDS} s of sessions...`);
    const sampler = sampleBaselines(redis, db, http, 100);
    const load = await runSessions(http, {
      tag: `fresh${workers}`,
      threads: THREADS,
      turns: TURNS,
      seconds: SECONDS,
      gapMs: GAP_MS,
      debounceMs: DEBOUNCE_MS,
      modelMs: MODEL_MS,
      pollMs: POLL_MS,
      giveUpMs: 120_000,
    });
    const under = await sampler.stop();
    const stats = await model.stats(`fresh${workers}-`);
    out(`backlog of ${BURST} sessions...`);
    const b = await burst(http, db, id, `burst${workers}`, BURST, DEBOUNCE_MS, 600_000);
    const burstStats = await model.stats(`burst${workers}-`);
    await stopRoles(procs);
    const committedLog = new Map<string, number>();
    for (const proc of procs)
      for (const line of readFileSync(logOf(proc.name), 'utf8').split('\n'))
        if (line.includes('"reflection committed"')) {
          const entry = JSON.parse(line) as { threadId?: string; time?: number };
          if (entry.threadId && entry.time) committedLog.set(entry.threadId, entry.time);
        }
    const phase: PhaseInput = {
      workers,
      ...load,
      under,
      calls: stats.sessions,
      burst: b,
      burstCalls: burstStats.sessions,
      modelLagP99: stats.lag.p99,
      committedLog,
    };
    const r = rows(phase, settings);
    for (const k of ['load', 'freshness', 'calls', 'throughput'] as const) tables[k].push(r[k]);
    const p95 = summarize(r.f.share).p95;
    const exact = r.f.calls.exact === r.f.complete.length && r.f.complete.length > 0;
    targets.push(
      `${workers} process(es): freshness share p95 ${ms(p95)} (target <= 250 ms): ${p95 <= 250 ? 'PASS' : 'FAIL'}; ` +
        `exactly one extraction call per session per kind: ${r.f.calls.exact}/${r.f.complete.length} sessions: ${exact ? 'PASS' : 'FAIL'} ` +
        `(of the sessions whole to the server, every turn within the debounce of the last: ${r.f.intactCalls.exact}/${r.f.intact})`,
    );
  }
  out('\nLoad (sampled during the sessions; turn 202 = POST /v1/threads/:id/turns, client-side)');
  table(tables.load);
  out(
    `\nFreshness: last turn's 202 -> first search returning its memory, minus DEBOUNCE_MS (${DEBOUNCE_MS}) and the model (${MODEL_MS} ms); polled every ${POLL_MS} ms`,
  );
  table(tables.freshness);
  out(`\nExtraction calls (the stand-in counts them; ${KINDS.length} kinds: ${KINDS.join(', ')})`);
  table(tables.calls);
  out(
    `\nReflections/s: a backlog of one-turn sessions, all due at once; slot ceiling = processes x concurrency / model latency`,
  );
  table(tables.throughput);
  out(
    `\nTargets (issue 18; set at 1,000 live threads and a 1 s model; this run: ${THREADS} threads, ${MODEL_MS} ms model)`,
  );
  for (const t of targets) out(`  ${t}`);
} finally {
  await cleanup();
}
