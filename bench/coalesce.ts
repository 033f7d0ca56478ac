/**
 * npm run bench:coalesce -- [--users 20] [--sessions 3] [--turns 20] [--compress 100]
 * Replays a multi-session chat workload, time-compressed: sessions of `turns` turns 2-6 s apart,
 * sessions 5 min apart (far beyond the window), DEBOUNCE_MS 30 s and MAX_WAIT_MS 5 min, all
 * divided by `compress`,
 * against real Redis, Postgres and BullMQ with a fake model, and counts extraction calls.
 * Baseline in the same run: a per-turn memory layer (mem0's add()) makes one call per turn.
 */
import { z } from 'zod';
import { defineKind } from '../src/memory/kinds.js';
import { startHarness } from '../test/helpers/harness.js';
import { flag, table } from './stats.js';
import { countJobs } from '../src/queue/queues.js';

const USERS = flag('users', 20);
const SESSIONS = flag('sessions', 3);
const TURNS = flag('turns', 20);
const C = flag('compress', 100);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jitter = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

const kinds = [
  defineKind({
    name: 'fact',
    description: 'A fact about the user',
    namespace: ['facts', '{userId}'],
    schema: z.object({ content: z.string() }),
  }),
  defineKind({
    name: 'preference',
    description: 'A preference of the user',
    namespace: ['prefs', '{userId}'],
    schema: z.object({ content: z.string() }),
  }),
];
const h = await startHarness({
  roles: ['reflection'],
  chat: () => ({ content: 'no changes' }),
  env: {
    DEBOUNCE_MS: String(Math.round(30_000 / C)),
    MAX_WAIT_MS: String(Math.round(300_000 / C)),
    REFLECTION_CONCURRENCY: '16',
    LOG_LEVEL: 'warn',
  },
  runtime: { kinds },
});
h.model.latencyMs = 20;

const started = Date.now();
await Promise.all(
  Array.from({ length: USERS }, async (_, u) => {
    await sleep(jitter(0, 2_000 / C));
    for (let s = 0; s < SESSIONS; s++) {
      const threadId = `user${u}-session${s}`;
      for (let t = 0; t < TURNS; t++) {
        const role = t % 2 === 0 ? 'user' : 'assistant';
        await h.runtime.producer.enqueue({
          threadId,
          context: { userId: `user${u}` },
          messages: [{ role, content: `session ${s} turn ${t}: something about my day` }],
        });
        await sleep(jitter(2_000, 6_000) / C);
      }
      await sleep(300_000 / C);
    }
  }),
);
// Let the last sessions settle.
for (;;) {
  const c = await countJobs(h.runtime.queues.reflection, 'delayed', 'waiting', 'active');
  if ((c.delayed ?? 0) + (c.waiting ?? 0) + (c.active ?? 0) === 0) break;
  await sleep(100);
}
const sessions = USERS * SESSIONS;
const turns = sessions * TURNS;
const calls = h.model.chatRequests.length;
process.stdout.write(
  `\nbench:coalesce: ${USERS} users x ${SESSIONS} sessions x ${TURNS} turns, ${kinds.length} memory kinds, time / ${C}, ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
);
table([
  {
    system: 'engram (debounced, all kinds in one call)',
    'model calls': calls,
    'calls/session': (calls / sessions).toFixed(2),
    'calls/session/kind': (calls / sessions / kinds.length).toFixed(2),
    'calls/turn': (calls / turns).toFixed(3),
  },
  {
    system: 'per-turn baseline (one call per add)',
    'model calls': turns,
    'calls/session': (turns / sessions).toFixed(2),
    'calls/session/kind': (turns / sessions).toFixed(2),
    'calls/turn': '1.000',
  },
]);
process.stdout.write(`target: at most one extraction call per memory kind per session\n`);
await h.stop();
