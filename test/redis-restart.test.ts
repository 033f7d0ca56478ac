import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Runtime } from '../src/app/runtime.js';
import { parseEnv } from '../src/config/env.js';
import { cleanup, testEnv, testEnvVars, waitFor } from './helpers/harness.js';
import { killAll, spawnWorker, type WorkerProcess } from './helpers/processes.js';
import { StallProxy } from './helpers/stall-proxy.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
interface Line {
  level: number;
  msg: string;
  suppressedErrors?: number;
}

/** Redis restarts under running processes: they wait for it and say so in two lines, not hundreds. */
describe('a Redis restart', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  });

  it('an all-in-one runtime logs one line when Redis goes and one when it is back', async () => {
    const proxy = new StallProxy();
    const url = await proxy.start();
    const port = Number(new URL(url).port);
    cleanups.push(() => proxy.stop());
    // A consolidation tick every second: some land in the outage, as one every 5 minutes may.
    const env = testEnv('http://127.0.0.1:9/v1', {
      REDIS_URL: url,
      LOG_LEVEL: 'info',
      CONSOLIDATION_CRON: '* * * * * *',
    });
    const lines: Line[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
    const runtime = new Runtime(env, log, { ceilingIntervalMs: 50 });
    cleanups.push(
      () => cleanup(env),
      () => runtime.stop(),
    );
    await runtime.migrate();
    await runtime.start(['api', 'reflection', 'scheduler']);
    lines.length = 0;

    await proxy.stop();
    await waitFor(() => lines.some((l) => l.msg.startsWith('redis unreachable')));
    await sleep(1_500); // every connection, queue and worker fails and retries meanwhile
    await proxy.start(port);
    const back = await waitFor(() => lines.find((l) => l.msg === 'redis reachable again'));
    await waitFor(async () => (await fetch(`${serverUrl(runtime)}/readyz`)).ok);
    await sleep(500); // stragglers would log now

    expect(lines.filter((l) => l.level >= 40).map((l) => l.msg)).toEqual([
      'redis unreachable; retrying (further connection errors are counted, not logged)',
    ]);
    expect(lines.filter((l) => l.msg === 'redis reachable again')).toHaveLength(1);
    expect(lines.some((l) => l.msg === 'consolidation tick skipped: redis unreachable')).toBe(true);
    expect(back.suppressedErrors).toBeGreaterThan(5);
  });

  it('a reflection worker started while Redis is down waits for it instead of exiting', async () => {
    const proxy = new StallProxy();
    const url = await proxy.start();
    const port = Number(new URL(url).port);
    await proxy.stop();
    const vars = testEnvVars('http://127.0.0.1:9/v1', { LOG_LEVEL: 'warn' });
    // The schema exists (a migrate ran); only Redis is missing.
    const migrator = new Runtime(parseEnv(vars), pino({ level: 'silent' }));
    await migrator.migrate();
    await migrator.stop();
    cleanups.push(() => cleanup(parseEnv(vars)));
    const workers: WorkerProcess[] = [spawnWorker({ ...vars, REDIS_URL: url })];
    cleanups.push(
      () => killAll(workers),
      () => proxy.stop(),
    );
    const [w] = workers as [WorkerProcess];
    await w.waitForLine(/redis unreachable/);
    await sleep(6_000); // past the 5 s after which it used to exit
    expect(w.child.exitCode).toBeNull();
    await proxy.start(port);
    await w.waitForLine(/^ready$/);
    expect(w.lines.filter((l) => l.includes('redis unreachable'))).toHaveLength(1);
  });

  it('an API process started while Redis is down shows Bull Board once it is back', async () => {
    const proxy = new StallProxy();
    const url = await proxy.start();
    const port = Number(new URL(url).port);
    await proxy.stop();
    const env = testEnv('http://127.0.0.1:9/v1', { REDIS_URL: url });
    const runtime = new Runtime(env, pino({ level: 'silent' }));
    cleanups.push(
      () => proxy.stop(),
      () => cleanup(env),
      () => runtime.stop(),
    );
    await runtime.migrate();
    const starting = runtime.start(['api']);
    await sleep(500); // every connection refused meanwhile, Bull Board's among them
    await proxy.start(port);
    await starting;
    // Its first queue's first connect was refused; that queue used to keep the refusal for good
    // ("Connection is closed.", a 503 on every call) while the others showed their jobs.
    const res = await fetch(`${serverUrl(runtime)}/admin/queues/api/queues?activeQueue=reflection&page=1`);
    const body = (await res.json()) as { queues?: { name: string }[] };
    expect({ status: res.status, queues: body.queues?.map((q) => q.name).sort() }).toEqual({
      status: 200,
      queues: ['consolidation', 'reflection'],
    });
  });
});

function serverUrl(runtime: Runtime): string {
  const address = runtime.server?.server.address();
  return address && typeof address === 'object' ? `http://127.0.0.1:${address.port}` : '';
}
