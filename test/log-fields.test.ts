import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Runtime } from '../src/app/runtime.js';
import { RedisHealth } from '../src/queue/connection.js';
import { foodieModel } from './fake-model/foodie.js';
import { FakeModel, type ChatHandler } from './fake-model/server.js';
import { cleanup, testEnv, waitFor } from './helpers/harness.js';
import { StallProxy } from './helpers/stall-proxy.js';

/**
 * The keys at the top level of one JSON log line, in order, repeats included: pino writes a child
 * logger's fields and a call's fields side by side, so a key given by both appears twice, which
 * JSON.parse hides (the last wins) and log shippers refuse or cut.
 */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') {
      let end = i + 1;
      while (line[end] !== '"') end += line[end] === '\\' ? 2 : 1;
      if (depth === 1 && line[end + 1] === ':') keys.push(JSON.parse(line.slice(i, end + 1)) as string);
      i = end;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return keys;
}

const repeated = (line: string) => topLevelKeys(line).filter((k, i, all) => all.indexOf(k) !== i);

describe('log lines', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  });

  /** A reflection worker whose log lines are kept, with one turn enqueued on `threadId`. */
  async function reflectLogged(chat: ChatHandler, threadId: string, level: string, env: Record<string, string> = {}) {
    const model = await new FakeModel(chat).start();
    const vars = testEnv(model.url, { LOG_LEVEL: level, ...env });
    const lines: string[] = [];
    const log = pino({ level }, { write: (s: string) => void lines.push(s.trim()) });
    const runtime = new Runtime(vars, log, { ceilingIntervalMs: 50 });
    cleanups.push(
      () => model.stop(),
      () => cleanup(vars),
      () => runtime.stop(),
    );
    await runtime.migrate();
    await runtime.start(['reflection']);
    await runtime.producer.enqueue({
      threadId,
      context: { userId: 'u1' },
      messages: [{ role: 'user', content: 'I love ramen! I also like pasta.' }],
    });
    return lines;
  }

  it('a thread followed from its turn to its commit carries each field once', async () => {
    const lines = await reflectLogged(foodieModel, 'follow-me', 'debug');
    await waitFor(() => lines.find((l) => l.includes('"reflection committed"')));

    const thread = lines.filter((l) => l.includes('"threadId":"follow-me"'));
    expect(thread.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(
      expect.arrayContaining(['turns enqueued', 'model usage', 'reflection committed']),
    );
    const committed = JSON.parse(thread.find((l) => l.includes('"reflection committed"'))!) as Record<string, unknown>;
    expect(committed).toMatchObject({ component: 'reflection-worker', queue: 'reflection', threadId: 'follow-me' });
    expect(committed.jobId).toEqual(expect.any(String));
    expect(lines.filter((l) => repeated(l).length).map((l) => [repeated(l), l])).toEqual([]);
  });

  it("a failing reflection's lines: model retries carry its thread and job, its last failure is an error", async () => {
    const lines = await reflectLogged(() => ({ status: 500, error: 'model down' }), 'fails', 'info', {
      DEBOUNCE_MS: '50',
      LLM_MAX_RETRIES: '1',
      LLM_RETRY_BASE_MS: '10',
      REFLECTION_ATTEMPTS: '2',
      REFLECTION_BACKOFF_MS: '50',
    });
    await waitFor(() => lines.find((l) => l.includes('"final":true')));

    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const retries = parsed.filter((l) => l.msg === 'chat request failed, retrying');
    expect(retries).toHaveLength(2); // one per attempt
    for (const r of retries)
      expect(r).toMatchObject({ level: 40, threadId: 'fails', jobId: expect.any(String), model: 'gpt-4o-mini' });
    const failed = parsed.filter((l) => l.msg === 'reflection failed');
    expect(failed.map((l) => [l.level, l.final, l.attempts])).toEqual([
      [40, false, 1],
      [50, true, 2],
    ]);
    expect(lines.filter((l) => repeated(l).length).map((l) => [repeated(l), l])).toEqual([]);
  });

  it("a reflection's rejected model output is logged with its thread and job", async () => {
    // An insert without its content first (rejected, sent back in a repair round), then nothing.
    const chat: ChatHandler = (_request, index) =>
      index === 0 ? { toolCalls: [{ name: 'insert_memory', arguments: {} }] } : { content: 'nothing to add' };
    const lines = await reflectLogged(chat, 'repaired', 'info');
    await waitFor(() => lines.find((l) => l.includes('"reflection committed"')));

    const rejected = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'model output rejected');
    // It carried the manager's component alone: filtering on the thread, as an operator does, lost it.
    expect(rejected).toEqual([expect.objectContaining({ level: 40, threadId: 'repaired', jobId: expect.any(String) })]);
    expect(lines.filter((l) => repeated(l).length).map((l) => [repeated(l), l])).toEqual([]);
  });

  it("the prompt optimizer's line names its prompt as `prompt`, leaving `name` to the logger", async () => {
    const model = await new FakeModel(() => ({
      toolCalls: [{ name: 'propose_prompt', arguments: { analysis: 'Asks for brevity.', prompt: 'Be brief.' } }],
    })).start();
    const env = testEnv(model.url);
    const lines: string[] = [];
    const log = pino({ name: 'engram', level: 'info' }, { write: (s: string) => void lines.push(s.trim()) });
    const runtime = new Runtime(env, log);
    cleanups.push(
      () => model.stop(),
      () => cleanup(env),
      () => runtime.stop(),
    );
    await runtime.migrate();
    await runtime.start([]);
    await runtime.promptOptimizer.optimize({
      namespace: ['prompts', 'agent'],
      name: 'system',
      prompt: 'Be helpful.',
      sessions: [{ messages: [{ role: 'user', content: 'Hi' }], feedback: { comment: 'Too long' } }],
      runId: 'run-1',
    });
    const line = lines.find((l) => l.includes('"prompt optimized"'));
    expect(repeated(line!)).toEqual([]);
    expect(JSON.parse(line!)).toMatchObject({ name: 'engram', component: 'prompt-optimizer', prompt: 'system' });
  });

  it("Redis' outage line names where it was met without repeating its component", () => {
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s.trim()) });
    const health = new RedisHealth(log.child({ component: 'redis' }));
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6395'), {
      code: 'ECONNREFUSED',
      syscall: 'connect',
    });
    // What the consolidation worker's `error` event reports (scheduler.ts).
    health.error(refused, { component: 'consolidation-worker' });
    expect(lines).toHaveLength(1);
    expect(repeated(lines[0]!)).toEqual([]);
    expect(JSON.parse(lines[0]!)).toMatchObject({ component: 'redis', source: 'consolidation-worker' });
  });

  it('an outage answered 503 to every request is one warning a window, not one a request', async () => {
    const proxy = new StallProxy();
    const model = await new FakeModel().start();
    const redisUrl = await proxy.start();
    const env = testEnv(model.url, { REDIS_URL: redisUrl, ENQUEUE_TIMEOUT_MS: '30000' });
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s.trim()) });
    const runtime = new Runtime(env, log);
    // Run last to first: the proxy is back before the cleanup, which deletes the keys through it.
    cleanups.push(
      () => model.stop(),
      () => proxy.stop(),
      () => cleanup(env),
      async () => proxy.listening || (await proxy.start(Number(new URL(redisUrl).port))),
      () => runtime.stop(),
    );
    await runtime.migrate();
    await runtime.start(['api']);
    const address = runtime.server?.server.address() as { port: number };
    await proxy.stop();
    // A client retrying in a loop: each turn answered 503 used to log a warning with its stack.
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`http://127.0.0.1:${address.port}/v1/threads/t-out/turns`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ context: { userId: 'u' }, messages: [{ id: `m${i}`, role: 'user', content: 'hi' }] }),
      });
      expect(res.status).toBe(503);
    }
    const warned = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.dependency === 'redis');
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ method: 'POST', url: '/v1/threads/t-out/turns', heldBack: 0 });
  });
});
