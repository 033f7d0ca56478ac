/**
 * Figures of one `bench:pipeline` phase (one count of reflection processes), from the driver's
 * sessions, the stand-in model's counts and the baselines. Not part of the product.
 */
import type { SessionCalls } from './pipeline-model.js';
import type { Session } from './pipeline-load.js';
import type { Baselines, BurstResult } from './pipeline-phases.js';
import { ms, summarize } from './stats.js';

export interface PhaseInput {
  workers: number;
  sessions: Session[];
  turnsPerSec: number;
  acceptMs: number[];
  failures: number;
  under: Baselines;
  calls: Record<string, SessionCalls>;
  burst: BurstResult;
  burstCalls: Record<string, SessionCalls>;
  modelLagP99: number;
  /** Epoch ms of each thread's "reflection committed" log line (after the commit and the trim). */
  committedLog: Map<string, number>;
}

export interface Settings {
  threads: number;
  turns: number;
  gapMs: number;
  debounceMs: number;
  modelMs: number;
  concurrency: number;
  kinds: string[];
}

const p = (xs: number[]) => {
  const s = summarize(xs);
  return `${ms(s.p50)} / ${ms(s.p95)} / ${ms(s.p99)}`;
};

/** Sessions whose every kind got exactly one extraction call, and the calls per session. */
function callCounts(ids: string[], calls: Record<string, SessionCalls>, kinds: string[]) {
  let exact = 0;
  let extra = 0;
  let none = 0;
  let total = 0;
  for (const sid of ids) {
    const c = calls[sid];
    total += c?.calls ?? 0;
    if (!c || c.calls === 0) none++;
    else if (kinds.every((k) => c.kinds[k] === 1)) exact++;
    else extra++;
  }
  return { exact, extra, none, total, perSession: total / Math.max(1, ids.length) };
}

export function phaseFigures(r: PhaseInput, s: Settings) {
  const complete = r.sessions.filter((x) => x.accepts.length === s.turns);
  const seen = complete.filter((x) => x.seenAt !== null);
  const last = (x: Session) => x.accepts.at(-1) as number;
  const share = seen.map((x) => (x.seenAt as number) - last(x) - s.debounceMs - s.modelMs);
  const byCommit = seen.map((x) => (x.committedAt as number) - last(x) - s.debounceMs - s.modelMs);
  // Where the share goes: from the quiet moment to the model request (wake-up, lease, reads,
  // query embeddings), and from the model's answer to the search that returned the memory.
  const arrival = (x: Session) => r.calls[x.sid]?.arrivals.at(-1);
  const split = seen.filter((x) => arrival(x) !== undefined);
  const pre = split.map((x) => (arrival(x) as number) - last(x) - s.debounceMs);
  const post = split.map((x) => (x.seenAt as number) - (arrival(x) as number) - s.modelMs);
  const logged = split.filter((x) => r.committedLog.has(x.sid));
  const toCommit = logged.map((x) => (r.committedLog.get(x.sid) as number) - (arrival(x) as number) - s.modelMs);
  const toSeen = logged.map((x) => (x.seenAt as number) - (r.committedLog.get(x.sid) as number));
  const gaps = complete.flatMap((x) => x.accepts.slice(1).map((t, i) => t - (x.accepts[i] as number)));
  // Sessions that were surely one to the server: Redis buffered each turn between its send and
  // its 202, so each turn came within (this 202 - the last send) of the last. An overloaded
  // driver or API can space a session's turns past the debounce; engram then rightly reflects
  // twice, and the one-call rule is judged on the sessions it saw whole.
  const intact = complete.filter((x) =>
    x.accepts.every((t, i) => i === 0 || t - (x.sends[i - 1] as number) < s.debounceMs),
  );
  const maxGap = gaps.length ? Math.max(...gaps) : 0;
  return {
    complete,
    seen,
    share,
    byCommit,
    pre,
    post,
    toCommit,
    toSeen,
    maxGap,
    turnsPerSec: r.turnsPerSec,
    calls: callCounts(
      complete.map((x) => x.sid),
      r.calls,
      s.kinds,
    ),
    intact: intact.length,
    intactCalls: callCounts(
      intact.map((x) => x.sid),
      r.calls,
      s.kinds,
    ),
    burstCalls: callCounts(
      Array.from({ length: r.burst.sessions }, (_, i) => `burst${r.workers}-${i}`),
      r.burstCalls,
      s.kinds,
    ),
    polls: complete.reduce((a, x) => a + x.polls, 0) / Math.max(1, complete.length),
    pollErrors: complete.reduce((a, x) => a + x.pollErrors, 0),
  };
}

export function rows(r: PhaseInput, s: Settings) {
  const f = phaseFigures(r, s);
  const w = `${r.workers}`;
  const ceiling = (r.workers * s.concurrency) / (s.modelMs / 1000);
  return {
    f,
    load: {
      procs: w,
      'turns/s accepted': f.turnsPerSec.toFixed(0),
      'offered turns/s': (s.threads / (s.gapMs / 1000)).toFixed(0),
      'turn 202 p50/p95/p99': p(r.acceptMs),
      'GET /healthz p50/p95/p99': p(r.under.healthz),
      'PING p50/p95/p99': p(r.under.ping),
      'select 1 p50/p95/p99': p(r.under.select1),
      'failed turns': r.failures,
    },
    freshness: {
      procs: w,
      sessions: f.complete.length,
      seen: f.seen.length,
      'share p50/p95/p99 (seen by search)': p(f.share),
      'share by updatedAt': p(f.byCommit),
      'quiet -> model request': p(f.pre),
      'model answer -> seen': p(f.post),
      'answer -> committed (log)': p(f.toCommit),
      'committed (log) -> seen': p(f.toSeen),
      'polls/session': f.polls.toFixed(1),
      'max turn gap': ms(f.maxGap),
      'model timer lag p99': ms(r.modelLagP99),
    },
    calls: {
      procs: w,
      sessions: f.complete.length,
      'extraction calls': f.calls.total,
      'calls/session': f.calls.perSession.toFixed(2),
      'calls/session/kind': (f.calls.perSession / s.kinds.length).toFixed(2),
      'sessions with exactly 1 per kind': f.calls.exact,
      'more than 1': f.calls.extra,
      none: f.calls.none,
      'whole to the server: exactly 1 / sessions': `${f.intactCalls.exact} / ${f.intact}`,
      'burst: exactly 1 / sessions': `${f.burstCalls.exact} / ${r.burst.sessions}`,
    },
    throughput: {
      procs: w,
      'concurrency each': s.concurrency,
      'backlog (sessions)': r.burst.sessions,
      committed: r.burst.committed,
      seconds: r.burst.seconds.toFixed(2),
      'reflections/s': r.burst.overall.toFixed(1),
      'steady (10-90 %)': r.burst.steady.toFixed(1),
      'slot ceiling': ceiling.toFixed(0),
    },
  };
}
