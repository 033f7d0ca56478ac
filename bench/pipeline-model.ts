/**
 * The stand-in model of `bench:pipeline`, in its own process (forked with IPC), so that the
 * driver's load does not delay its timers: every chat answer is held exactly MODEL_MS, embeddings
 * answer at once. For each extraction request it records which session the turns came from
 * (their text says "session <id> turn <k>"), when it arrived, and which kinds it offered tools
 * for, and inserts one memory per offered kind naming the turns it saw. The parent asks for the
 * counts over IPC. Not part of the product.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { FakeModel, readPrompt, type ChatHandler } from '../test/fake-model/server.js';

export interface SessionCalls {
  /** Extraction requests that carried this session's turns. */
  calls: number;
  /** Requests per kind (a request counts for each kind it offered an insert tool for). */
  kinds: Record<string, number>;
  /** Epoch ms at which each request arrived. */
  arrivals: number[];
}

export type ModelMessage =
  | { type: 'ready'; url: string }
  | {
      type: 'stats';
      sessions: Record<string, SessionCalls>;
      /** Chat requests that were not extractions (consolidation merges), and embedding requests. */
      other: number;
      embeddings: number;
      /** This process' event-loop delay (ms): how late the stand-in's own timers may fire. */
      lag: { p50: number; p99: number; max: number };
    };

export type ParentMessage = { type: 'stats'; tag: string } | { type: 'stop' };

const MODEL_MS = Number(process.env.MODEL_MS ?? 1000);
const TURN = /session (\S+) turn (\d+)/;
const sessions = new Map<string, SessionCalls>();
let other = 0;
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();

const handler: ChatHandler = (request) => {
  const arrived = Date.now();
  const { turns } = readPrompt(request);
  const seen = turns.map((t) => TURN.exec(t.content)).filter((m): m is RegExpExecArray => m !== null);
  const sid = seen[0]?.[1];
  if (!sid) {
    other++;
    return { content: 'no changes', delayMs: MODEL_MS };
  }
  const kinds = (request.tools ?? []).map((t) => t.function.name).filter((n) => n.startsWith('insert_'));
  const entry = sessions.get(sid) ?? { calls: 0, kinds: {}, arrivals: [] };
  entry.calls++;
  entry.arrivals.push(arrived);
  for (const tool of kinds) entry.kinds[tool.slice(7)] = (entry.kinds[tool.slice(7)] ?? 0) + 1;
  sessions.set(sid, entry);
  // "#k;" per turn seen: the driver looks for its session's last turn in the memory.
  const content = `pipeline note for ${sid}: turns ${seen.map((m) => `#${m[2]};`).join(' ')}`;
  return { toolCalls: kinds.map((name) => ({ name, arguments: { content } })), delayMs: MODEL_MS };
};

const model = await new FakeModel(handler).start();
// The stand-in keeps every request it served; a long run would hold them all.
const trim = setInterval(() => {
  model.chatRequests.length = 0;
  model.chatResponses.length = 0;
  model.embeddingBodies.length = 0;
}, 1_000);

const send = (m: ModelMessage) => process.send?.(m);
process.on('message', (m: ParentMessage) => {
  if (m.type === 'stop') {
    clearInterval(trim);
    void model.stop().then(() => process.exit(0));
    return;
  }
  const picked: Record<string, SessionCalls> = {};
  for (const [sid, calls] of sessions) if (sid.startsWith(m.tag)) picked[sid] = calls;
  send({
    type: 'stats',
    sessions: picked,
    other,
    embeddings: model.embeddingRequests,
    lag: { p50: lag.percentile(50) / 1e6, p99: lag.percentile(99) / 1e6, max: lag.max / 1e6 },
  });
  lag.reset();
});
// Orphaned (the parent was SIGKILLed): go too.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', url: model.url });
