/**
 * npm run bench:enqueue -- [--n 5000] [--http-rate 1000] [--seconds 5]
 * Hot-path latency against the real Redis, compared with a Redis PING measured in the same run:
 * SDK enqueue (sequential and at concurrency 64) and HTTP enqueue (sequential, and an open loop
 * at a fixed request rate, with latency measured from each request's scheduled time so that
 * a slow server cannot hide its queueing). The API runs in its own process, like in production.
 */
import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { Redis } from 'ioredis';
import { createLogger } from '../src/log/logger.js';
import { EngramClient } from '../src/sdk/client.js';
import { cleanup, testEnvVars } from '../test/helpers/harness.js';
import { parseEnv } from '../src/config/env.js';
import { flag, ms, now, summarize, table } from './stats.js';

const N = flag('n', 5_000);
const RATE = flag('http-rate', 1_000);
const SECONDS = flag('seconds', 5);
const CONCURRENCY = 64;
const vars = testEnvVars('http://127.0.0.1:9/v1', { DEBOUNCE_MS: '600000', MAX_WAIT_MS: '3600000', PORT: '3457', LOG_LEVEL: 'warn' });
const env = parseEnv(vars);
// One user per thread: a thread's turns must share their context.
const body = (i: number, thread: string) => ({ context: { userId: `u-${thread}` }, messages: [{ role: 'user' as const, content: `message ${i}: I like trains and long walks` }] });
const rows: Record<string, string | number>[] = [];
const report = (name: string, samples: number[], extra: Record<string, string | number> = {}) => {
  const s = summarize(samples);
  rows.push({ measure: name, n: s.n, p50: ms(s.p50), p99: ms(s.p99), max: ms(s.max), ...extra });
  return s;
};

// Baseline: PING on its own connection.
const redis = new Redis(vars.REDIS_URL as string);
for (let i = 0; i < 500; i++) await redis.ping();
const pings: number[] = [];
for (let i = 0; i < N; i++) {
  const t = now();
  await redis.ping();
  pings.push(now() - t);
}
const ping = report('redis PING (baseline)', pings);

// SDK: straight to Redis.
const sdk = new EngramClient({ redisUrl: vars.REDIS_URL as string, prefix: env.ENGRAM_PREFIX, debounceMs: 600_000, maxWaitMs: 3_600_000, log: createLogger({ level: 'warn' }) });
await sdk.ready();
for (let i = 0; i < 500; i++) await sdk.enqueue({ threadId: `warm-${i % 50}`, ...body(i, `warm-${i % 50}`) });
// Most turns join a thread whose reflection job exists (one round trip); the first turn of a
// burst also adds the job (two). Measured apart, then mixed as a chat would (sessions of 20).
for (let i = 0; i < 200; i++) await sdk.enqueue({ threadId: `sdk-${i}`, ...body(i, `sdk-${i}`) });
const seq: number[] = [];
for (let i = 0; i < N; i++) {
  const t = now();
  await sdk.enqueue({ threadId: `sdk-${i % 200}`, ...body(i, `sdk-${i % 200}`) });
  seq.push(now() - t);
}
const sdkSeq = report('SDK enqueue, later turn', seq, { 'x PING p50': (summarize(seq).p50 / ping.p50).toFixed(2) });
const firsts: number[] = [];
for (let i = 0; i < Math.ceil(N / 5); i++) {
  const t = now();
  await sdk.enqueue({ threadId: `first-${i}`, ...body(i, `first-${i}`) });
  firsts.push(now() - t);
}
report('SDK enqueue, first turn', firsts, { 'x PING p50': (summarize(firsts).p50 / ping.p50).toFixed(2) });
const mixed: number[] = [];
for (let i = 0; i < N; i++) {
  const t = now();
  await sdk.enqueue({ threadId: `mix-${Math.floor(i / 20)}`, ...body(i, `mix-${Math.floor(i / 20)}`) });
  mixed.push(now() - t);
}
const sdkMixed = report('SDK enqueue, sessions of 20', mixed, { 'x PING p50': (summarize(mixed).p50 / ping.p50).toFixed(2) });
const conc: number[] = [];
let next = 0;
const t0 = now();
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < N * 2) {
      const i = next++;
      const t = now();
      await sdk.enqueue({ threadId: `sdkc-${i % 500}`, ...body(i, `sdkc-${i % 500}`) });
      conc.push(now() - t);
    }
  }),
);
const sdkRate = (N * 2) / ((now() - t0) / 1000);
report(`SDK enqueue, concurrency ${CONCURRENCY}`, conc, { 'enqueues/s': Math.round(sdkRate) });

// HTTP: an api process on its own, as deployed (migrations first, as their own step).
const childEnv = { ...process.env, ...vars, OPENAI_API_KEY: 'bench' };
await new Promise((resolve, reject) =>
  spawn(process.execPath, ['--import', 'tsx', 'workers/migrate.ts'], { env: childEnv, stdio: ['ignore', 'ignore', 'inherit'] }).on('exit', (code) =>
    code === 0 ? resolve(code) : reject(new Error(`migrate exited ${code}`)),
  ),
);
const api = spawn(process.execPath, ['--import', 'tsx', 'workers/api.ts'], { env: childEnv, stdio: ['ignore', 'inherit', 'inherit'] });
const base = `http://127.0.0.1:${vars.PORT}`;
for (let i = 0; i < 100; i++) {
  if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) break;
  await new Promise((r) => setTimeout(r, 200));
}
const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const post = (i: number, thread: string) =>
  new Promise<number>((resolve, reject) => {
    const payload = JSON.stringify(body(i, thread));
    const req = request(`${base}/v1/threads/${thread}/turns`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 202 ? resolve(res.statusCode) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(payload);
  });
const get = (path: string) =>
  new Promise<void>((resolve, reject) => {
    request(`${base}${path}`, { agent }, (res) => {
      res.resume();
      res.on('end', resolve);
    })
      .on('error', reject)
      .end();
  });
for (let i = 0; i < 500; i++) await get('/healthz');
const floor: number[] = [];
for (let i = 0; i < 3_000; i++) {
  const t = now();
  await get('/healthz');
  floor.push(now() - t);
}
report('HTTP GET /healthz (baseline)', floor);
for (let i = 0; i < 500; i++) await post(i, `hwarm-${i % 50}`);
const httpSeq: number[] = [];
for (let i = 0; i < Math.min(N, 3_000); i++) {
  const t = now();
  await post(i, `http-${i % 200}`);
  httpSeq.push(now() - t);
}
report('HTTP enqueue, sequential', httpSeq);

// Open loop at a fixed rate: each request is due at start + i / rate.
const total = RATE * SECONDS;
const open: number[] = [];
const start = now();
const inflight: Promise<void>[] = [];
for (let i = 0; i < total; i++) {
  const due = start + (i * 1000) / RATE;
  const wait = due - now();
  if (wait > 1) await new Promise((r) => setTimeout(r, wait));
  // From the due time (a late send counts against the server), or from the send if early.
  const from = Math.max(due, now());
  inflight.push(post(i, `open-${i % 500}`).then(() => void open.push(now() - from)));
}
await Promise.all(inflight);
const achieved = total / ((now() - start) / 1000);
report(`HTTP enqueue, open loop ${RATE}/s`, open, { 'achieved req/s': Math.round(achieved) });

process.stdout.write(`\nbench:enqueue (${new Date().toISOString()}, node ${process.version})\n`);
table(rows);
process.stdout.write(
  `\nSDK p50 / PING p50 = ${(sdkSeq.p50 / ping.p50).toFixed(2)} later turns, ${(sdkMixed.p50 / ping.p50).toFixed(2)} sessions of 20 (target <= 2); ` +
    `SDK p99 sequential = ${ms(sdkMixed.p99)} (target <= 1 ms); ` +
    `HTTP p99 at ${RATE}/s = ${ms(summarize(open).p99)} (target <= 3 ms)\n`,
);

api.kill('SIGTERM');
await new Promise((r) => api.on('exit', r));
agent.destroy();
await sdk.close();
redis.disconnect();
await cleanup(env);
