import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEARCH_LIMIT_MAX } from '../src/tools/definitions.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { written } from './helpers/hostile.js';

/**
 * Issue 15's fuzz inside a live MCP session (api-fuzz.test.ts reaches /mcp only without one):
 * tool calls whose arguments no tool may take, or tools that do not exist, generated from one
 * seed. None may answer 5xx or an internal error, each must be refused in words a model can act
 * on (a JSON-RPC error or a tool result flagged isError), and nothing may be written.
 * `FUZZ_SEED=<seed> npx vitest run test/mcp-fuzz.test.ts` replays a failure.
 */
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const RUNS = Number(process.env.FUZZ_RUNS ?? 1_000);
const KINDS_FILE = new URL('./fixtures/mcp-kinds.yaml', import.meta.url).pathname;
const KEY = 'acme-key-0123456789abcdef';

/** Nesting deeper than any bound engram sets on a document. */
const deep = (depth: number): unknown => (depth === 0 ? 'x' : { a: deep(depth - 1) });

/** Values where text is wanted: empty, NUL, a lone surrogate, too long for `max`, not text. */
const badText = (max: number) =>
  fc.constantFrom<unknown>('', 'a\u0000b', '\u0000', 'a\ud800b', '\udc00', 'x'.repeat(max + 1), 1, null, true, [], {}, [
    'a',
  ]);
const badInt = (max: number) => fc.constantFrom<unknown>(0, -1, max + 1, 1.5, '3', null, 1e308, Number.NaN, []);
const extra = fc.constantFrom<Record<string, unknown>>(
  { extra: 1 },
  // An own "__proto__" key, as JSON.parse makes one (a literal would set the prototype).
  JSON.parse('{"__proto__": 1}') as Record<string, unknown>,
  { constructor: 'x' },
);

/** For each tool, arguments it must refuse: one field broken at a time, or the shape itself. */
const callsOf: Record<string, fc.Arbitrary<unknown>> = {
  recall: fc.oneof(
    badText(8_000).map((query) => ({ query })),
    badInt(50).map((limit) => ({ query: 'what do I like?', limit })),
    extra.map((e) => ({ query: 'what do I like?', ...e })),
    fc.constant({}),
  ),
  search_memory: fc.oneof(
    badText(2_000).map((query) => ({ query })),
    badInt(SEARCH_LIMIT_MAX).map((limit) => ({ query: 'tea', limit })),
    fc.constantFrom<unknown>('nope', '', 1, 'memory\u0000').map((kind) => ({ query: 'tea', kind })),
    extra.map((e) => ({ query: 'tea', ...e })),
  ),
  remember: fc.oneof(
    fc.constantFrom<unknown>(
      {},
      { messages: [] },
      { messages: Array.from({ length: 101 }, () => ({ role: 'user', content: 'hi' })) },
      { messages: [{ role: 'robot', content: 'hi' }] },
      { messages: [{ role: 'user' }] },
      { messages: [{ role: 'user', content: '' }] },
      { messages: [{ role: 'user', content: 'hi', createdAt: 'yesterday' }] },
      { messages: [{ role: 'user', content: 'hi', id: '' }] },
      { messages: 'hi' },
      { messages: [{ role: 'user', content: 'hi' }], document: { content: 'x' } },
      { document: [] },
      { document: 'User likes tea' },
      { document: {} },
      { document: { wrong: 1 } },
      { document: { content: '' } },
      { document: { content: 'x'.repeat(2_001) } },
      { document: { content: 'tea', extra: 1 } },
      { document: { content: 'a\u0000b' } },
      { document: { 'a\u0000': 'b', content: 'tea' } },
      { document: { content: 'tea' }, kind: 'nope' },
      { document: { content: 'tea' }, kind: 'user_profile' },
      { document: { content: deep(200) } },
      { document: { content: Array.from({ length: 100_000 }, () => 1) } },
    ),
    extra.map((e) => ({ document: { content: 'tea' }, ...e })),
  ),
  forget: fc.oneof(
    fc.constantFrom<unknown>('m1', 'm999', 'x'.repeat(65), '', 1, null, 'a\u0000', '\ud800').map((id) => ({ id })),
    extra.map((e) => ({ id: 'm1', ...e })),
    fc.constant({}),
  ),
  memory_history: fc.oneof(
    fc.constantFrom<unknown>('m1', 'm999', 'x'.repeat(65), '', 1, null, 'a\u0000').map((id) => ({ id })),
    fc.constant({}),
  ),
};

/** A tools/call: a tool's bad arguments, arguments that are no object, or a tool that does not exist. */
const calls = fc.oneof(
  {
    arbitrary: fc.oneof(...Object.entries(callsOf).map(([name, args]) => args.map((a) => ({ name, arguments: a })))),
    weight: 8,
  },
  {
    arbitrary: fc
      .tuple(fc.constantFrom(...Object.keys(callsOf)), fc.constantFrom<unknown>([], 'x', 1, null, [{ query: 'tea' }]))
      .map(([name, args]) => ({ name, arguments: args })),
    weight: 1,
  },
  {
    arbitrary: fc
      .constantFrom<unknown>('nope', '', 'manage_memory', '__proto__', 'recall\u0000', 1, null)
      .map((name) => ({ name, arguments: { query: 'tea' } })),
    weight: 1,
  },
);

interface RpcAnswer {
  error?: { message?: string };
  result?: { isError?: boolean; content?: { type: string; text: string }[] };
}

describe('fuzzed tool calls inside an MCP session', () => {
  let h: Harness;
  let session = '';
  const headers = () => ({
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${KEY}`,
    ...(session ? { 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' } : {}),
  });
  const rpc = (body: unknown) =>
    fetch(`${h.url}/mcp`, { method: 'POST', headers: headers(), body: JSON.stringify(body) });

  beforeAll(async () => {
    h = await startHarness({
      roles: ['api'],
      env: { ENGRAM_KINDS_FILE: KINDS_FILE, API_KEYS: `acme:${KEY}`, ADMIN_PASSWORD: 'admin-password-123' },
    });
    const init = await fetch(`${h.url}/mcp`, {
      method: 'POST',
      headers: { ...headers(), 'x-engram-context': JSON.stringify({ userId: 'u1' }) },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 0,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'fuzz', version: '1' } },
      }),
    });
    expect(init.status).toBe(200);
    session = init.headers.get('mcp-session-id') ?? '';
    expect(session).not.toBe('');
    expect((await rpc({ jsonrpc: '2.0', method: 'notifications/initialized' })).status).toBe(202);
  });
  afterAll(async () => {
    await fetch(`${h.url}/mcp`, { method: 'DELETE', headers: headers() }).catch(() => undefined);
    await h?.stop();
  });

  it(`refuses ${RUNS} of them in words, never with an internal error, and writes nothing`, async () => {
    const before = await written(h);
    const outcomes = new Map<string, number>();
    let id = 1;
    try {
      await fc.assert(
        fc.asyncProperty(calls, async (params) => {
          const res = await rpc({ jsonrpc: '2.0', id: id++, method: 'tools/call', params });
          const text = await res.text();
          const answer = `${res.status} ${text.slice(0, 300)}`;
          if (res.status >= 500) throw new Error(`5xx: ${answer}`);
          let message: string | undefined;
          let outcome: string;
          if (res.status >= 400) {
            // Refused before the session (too deep, too big): the HTTP API's own `{ error }`.
            message = (JSON.parse(text) as { error?: string }).error;
            outcome = `http ${res.status}`;
          } else {
            const body = JSON.parse(text) as RpcAnswer;
            if (body.result && body.result.isError !== true) throw new Error(`a bad call was taken: ${answer}`);
            message = body.error?.message ?? body.result?.content?.[0]?.text;
            outcome = body.error ? `rpc error` : 'tool error';
          }
          if (!message) throw new Error(`a refusal without a message: ${answer}`);
          if (/internal error/i.test(message)) throw new Error(`an internal error: ${answer}`);
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: true },
      );
    } catch (err) {
      throw new Error(`MCP fuzz failed; replay with FUZZ_SEED=${SEED}: ${(err as Error).message}`, { cause: err });
    } finally {
      console.info(`MCP fuzz: seed ${SEED}, ${RUNS} runs, ${JSON.stringify(Object.fromEntries(outcomes))}`);
    }
    expect(await written(h), `writes (seed ${SEED})`).toEqual(before);
    // Both kinds of refusal came up: a generator that met only one would prove little.
    expect([...outcomes.keys()], `seed ${SEED}`).toEqual(expect.arrayContaining(['rpc error', 'tool error']));
    // The session is still usable after all of it.
    const list = (await (await rpc({ jsonrpc: '2.0', id: id++, method: 'tools/list' })).json()) as {
      result: { tools: unknown[] };
    };
    expect(list.result.tools).toHaveLength(Object.keys(callsOf).length);
  });
});
