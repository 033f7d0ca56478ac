import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedRedis, type EmbeddedRedis } from '../src/app/embedded-redis.js';
import { closedPort as freePort } from './helpers/ports.js';

/** Whether a redis-server answers at `url`. */
async function answers(url: string): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

/** The JSON lines a logger wrote, and their keys at the top level, repeats included. */
function logged() {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s.trim()) });
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/**
 * The all-in-one process' embedded redis-server is named by a pid file in its data folder, which
 * a SIGKILLed process leaves behind. The pid it names may since be another redis-server's (pids
 * are reused after a reboot): that one was stopped as an orphan, the system's Redis among them.
 */
describe("the embedded redis-server's pid file", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });
  const folder = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'engram-orphan-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };
  const started = (redis: EmbeddedRedis) => (cleanups.push(() => redis.stop()), redis);

  it("stops the folder's own orphan, naming it as redisPid (pid is the process' own field)", async () => {
    const dataDir = await folder();
    // Not stopped: what a SIGKILLed process leaves running.
    const orphan = started(await startEmbeddedRedis(dataDir, pino({ level: 'silent' })));
    const { log, lines, parsed } = logged();
    started(await startEmbeddedRedis(dataDir, log));
    expect(await answers(orphan.url)).toBe(false);
    const line = parsed().find((l) => l.msg === 'stopping the redis-server left by a previous run');
    expect(line?.redisPid).toEqual(expect.any(Number));
    // One `pid`, this process': the duplicate key was refused or cut by JSON log shippers.
    expect(lines.find((l) => l.includes('left by a previous run'))?.match(/"pid":/g)).toHaveLength(1);
    expect(line?.pid).toBe(process.pid);
  }, 30_000);

  it('leaves running a redis-server of another folder that a stale pid file names', async () => {
    const dataDir = await folder();
    const otherDir = await folder();
    const port = await freePort();
    const other: ChildProcess = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', otherDir, '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    cleanups.push(async () => {
      if (other.exitCode === null && other.signalCode === null) {
        other.kill('SIGKILL');
        await once(other, 'exit');
      }
    });
    const url = `redis://127.0.0.1:${port}`;
    for (let i = 0; i < 100 && !(await answers(url)); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await answers(url)).toBe(true);
    await mkdir(join(dataDir, 'redis'), { recursive: true });
    await writeFile(join(dataDir, 'redis', 'engram-redis.pid'), String(other.pid));

    const { log, parsed } = logged();
    const own = started(await startEmbeddedRedis(dataDir, log));
    expect(await answers(url)).toBe(true);
    expect(await answers(own.url)).toBe(true);
    expect(parsed().map((l) => l.msg)).toContain(
      'the redis-server pid file names a redis-server that does not run in this data folder: left running',
    );
  }, 30_000);
});
