import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { PermanentError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

export interface EmbeddedRedis {
  url: string;
  stop(): Promise<void>;
}

/**
 * The first-run default when no REDIS_URL is set (all-in-one process only): a `redis-server`
 * child on a free loopback port, with AOF in its data folder (accepted turns survive a restart)
 * and `noeviction` (an evicted key is a lost turn). Production runs its own Redis.
 * `onDeath` is called when the child exits without `stop` (killed, crashed, out of memory).
 */
export async function startEmbeddedRedis(
  dataDir: string,
  log: Logger,
  onDeath: (exit: { code: number | null; signal: NodeJS.Signals | null }) => void = () => undefined,
): Promise<EmbeddedRedis> {
  const dir = join(dataDir, 'redis');
  await mkdir(dir, { recursive: true });
  // A previous all-in-one process that was SIGKILLed leaves its redis-server running; two
  // servers appending to one AOF would corrupt it, so stop the orphan first.
  const pidFile = join(dir, 'engram-redis.pid');
  await stopOrphan(pidFile, dir, log);
  const port = await freePort();
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--save',
    '',
    '--maxmemory-policy',
    'noeviction',
    // A pending thread's cost by two thirds smaller (docs/operations.md#redis).
    '--stream-node-max-bytes',
    '256',
    '--hash-max-listpack-value',
    '1024',
  ];
  const child: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
  // However this process ends (a second signal, the grace timeout, a crash), take Redis along.
  const killChild = () => child.kill('SIGTERM');
  process.once('exit', killChild);
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new PermanentError(
              'REDIS_URL is not set and no `redis-server` is on PATH: install Redis 7 (Debian: `apt-get install redis-server`) or set REDIS_URL',
            )
          : err,
      ),
    ),
  );
  const url = `redis://127.0.0.1:${port}`;
  await Promise.race([spawnError, waitForPing(url)]);
  await writeFile(pidFile, String(child.pid));
  log.info({ url, dir }, 'embedded redis-server started (set REDIS_URL to use your own)');
  let stopping = false;
  child.once('exit', (code, signal) => {
    if (!stopping) onDeath({ code, signal });
  });
  return {
    url,
    async stop() {
      stopping = true;
      process.off('exit', killChild);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(pidFile, { force: true });
    },
  };
}

/**
 * Stops the redis-server a SIGKILLed process left in `dir`, named by its pid file. A pid is
 * reused: after a reboot or in another pid namespace the file may name someone else's
 * redis-server (the system's), which the name alone stopped. Ours runs in `dir` (redis-server
 * changes to its `--dir`), so its working directory says whose it is; one that cannot be read
 * (another user's) is not ours either. The line's key is `redisPid`: `pid` is pino's own field.
 */
async function stopOrphan(pidFile: string, dir: string, log: Logger): Promise<void> {
  const pid = Number(await readFile(pidFile, 'utf8').catch(() => ''));
  if (!pid) return;
  const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!command.startsWith('redis-server')) return;
  const [cwd, own] = await Promise.all([readlink(`/proc/${pid}/cwd`).catch(() => null), realpath(dir)]);
  if (cwd !== own) {
    log.warn(
      { redisPid: pid, cwd, dir: own },
      'the redis-server pid file names a redis-server that does not run in this data folder: left running',
    );
    return;
  }
  log.warn({ redisPid: pid }, 'stopping the redis-server left by a previous run');
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 100 && (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitForPing(url: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      return;
    } catch {
      if (Date.now() > deadline) throw new PermanentError(`embedded redis-server did not answer on ${url} within 10 s`);
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      probe.disconnect();
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
