/**
 * The load of `bench:pipeline`: `threads` live threads, each a loop of sessions of `turns` turns
 * sent `gapMs` apart on average (uniform in 0.5-1.5 x), a new thread (and user) per session, over
 * HTTP as an application would. Each session's freshness is measured as a user would see it:
 * from its last turn's 202 to the first search (GET /v1/memories/search) that returns a memory
 * naming that turn. Polling starts when the memory could first exist (last turn + debounce +
 * model latency), every `pollMs` for 5 s, then every 100 ms. Not part of the product.
 */
import type { Http } from './pipeline-http.js';

export const epoch = () => performance.timeOrigin + performance.now();
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

export interface LoadSettings {
  tag: string;
  threads: number;
  turns: number;
  seconds: number;
  gapMs: number;
  debounceMs: number;
  modelMs: number;
  pollMs: number;
  /** A session whose memory is not seen this long after it could exist counts as never seen. */
  giveUpMs: number;
}

export interface Session {
  sid: string;
  /** Epoch ms of each turn's 202. */
  accepts: number[];
  /** Epoch ms at which each accepted turn was sent. */
  sends: number[];
  /** Epoch ms of the first search answer holding the memory of the last turn. */
  seenAt: number | null;
  /** The memory's updatedAt (Postgres now(): the committing transaction's start). */
  committedAt: number | null;
  polls: number;
  pollErrors: number;
}

/** One turn of a session: its text names the session and turn (the stand-in model reads them). */
export function turnBody(sid: string, k: number) {
  return {
    context: { userId: sid },
    messages: [
      { id: `m${k}`, role: 'user', content: `session ${sid} turn ${k}: I like trains, long walks and miso ramen` },
    ],
  };
}

export async function runSessions(http: Http, s: LoadSettings) {
  const sessions: Session[] = [];
  const watchers: Promise<void>[] = [];
  const acceptMs: number[] = [];
  let failures = 0;
  let n = 0;
  const gap = () => s.gapMs * (0.5 + Math.random());
  const start = epoch();
  const endAt = start + s.seconds * 1000;
  await Promise.all(
    Array.from({ length: s.threads }, async () => {
      // Spread the threads' first turns over one session, so that sessions settle evenly in
      // time: started within one gap, they settled in waves that queued for reflection slots.
      await sleep(Math.random() * s.turns * s.gapMs);
      while (epoch() < endAt) {
        const session: Session = {
          sid: `${s.tag}-${n++}`,
          accepts: [],
          sends: [],
          seenAt: null,
          committedAt: null,
          polls: 0,
          pollErrors: 0,
        };
        sessions.push(session);
        for (let k = 1; k <= s.turns; k++) {
          if (k > 1) await sleep(gap());
          const t0 = epoch();
          try {
            await http.turn(session.sid, turnBody(session.sid, k));
          } catch {
            failures++;
            continue;
          }
          const t1 = epoch();
          acceptMs.push(t1 - t0);
          session.accepts.push(t1);
          session.sends.push(t0);
        }
        watchers.push(watch(http, session, s));
        await sleep(gap());
      }
    }),
  );
  await Promise.all(watchers);
  // The sustained rate: turns accepted once every thread has started (one session in) until
  // the load's end (sessions under way then finish after it, with fewer threads sending).
  const from = start + s.turns * s.gapMs;
  const accepted = sessions.flatMap((x) => x.accepts).filter((t) => t >= from && t <= endAt).length;
  return { sessions, acceptMs, failures, turnsPerSec: accepted / ((endAt - from) / 1000) };
}

async function watch(http: Http, session: Session, s: LoadSettings): Promise<void> {
  const last = session.accepts.at(-1);
  if (last === undefined || session.accepts.length < s.turns) return;
  const due = last + s.debounceMs + s.modelMs;
  await sleep(due - epoch());
  const path = `/v1/memories/search?namespace=memories&namespace=${encodeURIComponent(session.sid)}&query=pipeline&mode=text&refreshTtl=false`;
  const marker = `#${s.turns};`;
  while (epoch() < due + s.giveUpMs) {
    session.polls++;
    try {
      const { memories } = await http.getJson<{ memories: { value: { content?: string }; updatedAt: string }[] }>(path);
      const hit = memories.find((m) => (m.value.content ?? '').includes(marker));
      if (hit) {
        session.seenAt = epoch();
        session.committedAt = Date.parse(hit.updatedAt);
        return;
      }
    } catch {
      session.pollErrors++;
    }
    await sleep(epoch() - due < 5_000 ? s.pollMs : 100);
  }
}
