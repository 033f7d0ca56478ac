/**
 * HTTP load for the benchmarks from wrk, a load generator written in C (Debian package `wrk`,
 * installed by ops/bench-tools.sh). A Node client on this 2-core machine costs as much CPU per
 * request as the API it measures, and its own garbage collections land in the latencies it
 * reports; wrk's cost is a small fraction of that, and it times requests in microseconds.
 *
 * wrk corrects for coordinated omission: a request slower than twice its connection's usual
 * interval (run time / requests per connection) is also recorded for the requests that
 * connection would have sent meanwhile. At a fixed rate over 64 connections that interval is
 * about 64 ms, so the correction touches only requests slower than 128 ms and the figures are
 * the requests' own; in a closed loop at full speed the interval is short and the correction
 * lifts the tail, so a closed-loop p99 is a conservative figure (and sequential figures come
 * from a Node client instead).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const script = fileURLToPath(new URL('./wrk/load.lua', import.meta.url));
const resultSchema = z.object({
  requests: z.number(),
  durationUs: z.number(),
  socketErrors: z.number(),
  httpErrors: z.number(),
  p50: z.number(),
  p99: z.number(),
  max: z.number(),
});

export interface LoadOptions {
  base: string;
  /** GET this path; omitted: POST turns in sessions of 20 per thread. */
  path?: string;
  /** Thread id prefix; unique per run, so each run starts its own threads. */
  threads?: string;
  connections: number;
  seconds: number;
  /** Requests per second across all connections; omitted: closed loop, as fast as answered. */
  rate?: number;
}

/** Latencies in ms. Throws when any request failed: a figure over errors would mislead. */
export async function load(opts: LoadOptions) {
  const env = {
    ...process.env,
    LOAD_THREADS: opts.threads ?? 'wrk-',
    LOAD_RATE: String(opts.rate ?? 0),
    ...(opts.path ? { LOAD_PATH: opts.path } : {}),
  };
  // One wrk thread: one Lua state holds the rate's schedule (and C wrk needs no second core).
  const args = ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '-s', script, opts.base];
  const out = await new Promise<string>((resolve, reject) =>
    execFile('wrk', args, { env }, (err, stdout, stderr) =>
      err ? reject(new Error(`wrk failed: ${err.message} ${stderr}`)) : resolve(stdout),
    ),
  );
  const line = out.split('\n').find((l) => l.startsWith('LOAD '));
  if (!line) throw new Error(`wrk printed no result:\n${out}`);
  const r = resultSchema.parse(JSON.parse(line.slice(5)));
  if (r.socketErrors || r.httpErrors)
    throw new Error(`wrk: ${r.socketErrors} socket errors, ${r.httpErrors} HTTP errors of ${r.requests} requests`);
  return {
    n: r.requests,
    rate: r.requests / (r.durationUs / 1e6),
    p50: r.p50 / 1000,
    p99: r.p99 / 1000,
    max: r.max / 1000,
  };
}
