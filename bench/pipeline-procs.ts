/**
 * Child processes of `bench:pipeline`: engram's roles as deployed (`workers/*.ts`, configured
 * by the environment), the stand-in model (forked, with IPC), and one cleanup that runs once,
 * at the end or on Ctrl-C. Not part of the product.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import type { ModelMessage, ParentMessage } from './pipeline-model.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Role {
  name: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

/** A free loopback port (the OS picks it; a child binds it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** `node --import tsx <script>`, its output appended to `logFile` (pino lines, for a post-mortem). */
export function startRole(name: string, script: string, env: Record<string, string>, logFile: string): Role {
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { name, child, exited };
}

/** A one-shot command (migrations): resolves when it exits 0. */
export async function runOnce(script: string, env: Record<string, string>, logFile: string): Promise<void> {
  const role = startRole(script, script, env, logFile);
  const code = await role.exited;
  if (code !== 0) throw new Error(`${script} exited ${code}; see ${logFile}`);
}

/** Until GET `url` answers 200 (the API's /healthz, or a worker's METRICS_PORT /healthz). */
export async function waitHealthy(role: Role, url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (role.child.exitCode !== null) throw new Error(`${role.name} exited ${role.child.exitCode} while starting`);
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`${role.name} not healthy at ${url} within ${timeoutMs} ms`);
}

/** SIGTERM (drain), then SIGKILL after `graceMs`. */
export async function stopRoles(roles: Role[], graceMs = 15_000): Promise<void> {
  for (const r of roles) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const r of roles) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  }, graceMs);
  await Promise.all(roles.map((r) => r.exited));
  clearTimeout(timer);
}

export interface ModelProcess {
  url: string;
  stats(tag: string): Promise<Extract<ModelMessage, { type: 'stats' }>>;
  stop(): Promise<void>;
}

/** The stand-in model in its own process, each chat answer held `modelMs`. */
export async function startModel(modelMs: number): Promise<ModelProcess> {
  const child = fork('bench/pipeline-model.ts', [], {
    execArgv: ['--import', 'tsx'],
    env: { PATH: process.env.PATH ?? '', MODEL_MS: String(modelMs) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const next = <T extends ModelMessage['type']>(type: T) =>
    new Promise<Extract<ModelMessage, { type: T }>>((resolve, reject) => {
      const onMessage = (m: ModelMessage) => {
        if (m.type !== type) return;
        child.off('message', onMessage);
        resolve(m as Extract<ModelMessage, { type: T }>);
      };
      child.on('message', onMessage);
      child.once('exit', (code) => reject(new Error(`stand-in model exited ${code}`)));
    });
  const { url } = await next('ready');
  const ask = (m: ParentMessage) => child.send(m);
  return {
    url,
    stats(tag) {
      const reply = next('stats');
      ask({ type: 'stats', tag });
      return reply;
    },
    async stop() {
      if (child.exitCode === null && child.connected) ask({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Runs `fn` once, at the end or on the first Ctrl-C/SIGTERM (another one 2 s later exits at once), so
 * that no child process, schema or Redis key outlives the bench.
 */
export function onceCleanup(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  const run = () => (running ??= fn());
  let first = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // One Ctrl-C arrives more than once: from the terminal to the whole process group, and
    // relayed by npm and tsx. Only a later one means "exit now".
    if (first) {
      if (Date.now() - first > 2_000) process.exit(130);
      return;
    }
    first = Date.now();
    process.stderr.write(`\n${signal}: cleaning up (child processes, schema, Redis keys)...\n`);
    // The children are going: requests in flight fail, and must not end the process before
    // the cleanup has run.
    process.on('unhandledRejection', () => undefined);
    void run().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return run;
}
