import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_SESSIONS, MAX_TENANT_SESSIONS } from '../src/api/mcp-route.js';
import { foodieModel } from './fake-model/foodie.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { callTool, exerciseEveryTool, storeProfile } from './helpers/mcp-session.js';

const KINDS_FILE = new URL('./fixtures/mcp-kinds.yaml', import.meta.url).pathname;
const ACME = 'acme-key-0123456789abcdef';
const GLOBEX = 'globex-key-0123456789abcdef';

/** MCP over streamable HTTP at /mcp on the API, with API keys and tenants as on /v1. */
describe('the MCP server at /mcp', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api', 'reflection'],
      chat: foodieModel,
      env: {
        ENGRAM_KINDS_FILE: KINDS_FILE,
        API_KEYS: `acme:${ACME},globex:${GLOBEX}`,
        ADMIN_PASSWORD: 'admin-password-123',
      },
    });
    await storeProfile(h);
  });
  afterAll(async () => h?.stop());

  const connect = async (headers: Record<string, string>) => {
    const client = new Client({ name: 'engram-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${h.url}/mcp`), { requestInit: { headers } });
    await client.connect(transport);
    return { client, transport };
  };
  const initialize = (headers: Record<string, string>) =>
    fetch(`${h.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'curl', version: '1' } },
      }),
    });

  it("lists and calls every tool with a tenant's key, its context stamped with the tenant", async () => {
    const { client, transport } = await connect({
      authorization: `Bearer ${ACME}`,
      'x-engram-context': JSON.stringify({ userId: 'u1' }),
    });
    try {
      expect(transport.sessionId).toMatch(/^[0-9a-f-]{36}$/);
      // The helper checks that memories land in ["acme", "memories", "u1"].
      await exerciseEveryTool(client, h);
      const [pasta] = await h.runtime.storeApi.search({ namespacePrefix: ['acme', 'memories', 'u1'] });
      const history = await h.runtime.storeApi.history({ namespace: pasta!.namespace, key: pasta!.key });
      expect(history[0]?.threadId).toMatch(/^acme\/mcp-[0-9a-f]{16}$/);
    } finally {
      await transport.terminateSession();
      await client.close();
    }
  });

  it('refuses a request without a valid key, as /v1 does', async () => {
    expect((await initialize({ 'x-engram-context': '{"userId":"u1"}' })).status).toBe(401);
    expect((await initialize({ authorization: 'Bearer wrong-key-0123456789', 'x-engram-context': '{}' })).status).toBe(
      401,
    );
  });

  it("refuses another tenant's context, and a bad or incomplete context header, naming it", async () => {
    const auth = { authorization: `Bearer ${ACME}` };
    const cases: [Record<string, string>, number, string][] = [
      [{ 'x-engram-context': '{"userId":"u1","tenant":"globex"}' }, 403, 'not your tenant'],
      [{ 'x-engram-context': 'userId=u1' }, 400, 'must be a JSON object'],
      [{ 'x-engram-context': '{"user id":"u1"}' }, 400, 'context keys must be identifiers'],
      [{ 'x-engram-context': '{"userId":"a\\u0000b"}' }, 400, 'NUL'],
      // Refused by name, as in a body: the context's record dropped it without a word.
      [{ 'x-engram-context': '{"userId":"u1","__proto__":{"x":"y"}}' }, 400, 'has a key "__proto__", which is refused'],
      // é as the Latin-1 byte 0xE9 (what fetch sends for it): no UTF-8, and not guessed at.
      [{ 'x-engram-context': '{"userId":"jos\u00e9"}' }, 400, 'header is not UTF-8'],
      [{}, 400, 'context is missing "userId"'],
      [{ 'x-engram-context': '{"userId":"u1"}', 'x-engram-thread': 'a b' }, 400, 'thread'],
    ];
    for (const [headers, status, says] of cases) {
      const res = await initialize({ ...auth, ...headers });
      expect(res.status, JSON.stringify(headers)).toBe(status);
      expect(((await res.json()) as { error: string }).error).toContain(says);
    }
  });

  it('reads the context header as UTF-8, so a user named in it is the one recalled', async () => {
    // Raw UTF-8 bytes, as curl sends them: each byte a character of this string goes out as that byte.
    const utf8Bytes = (text: string) => Buffer.from(text, 'utf8').toString('latin1');
    const jose = await connect({
      authorization: `Bearer ${ACME}`,
      'x-engram-context': utf8Bytes('{"userId":"josé"}'),
    });
    try {
      expect((await callTool(jose.client, 'remember', { document: { content: 'José drinks mate' } })).body).toEqual({
        result: 'created',
        id: 'm1',
      });
      const stored = await h.runtime.storeApi.search({ namespacePrefix: ['acme', 'memories', 'josé'] });
      expect(stored.map((m) => m.value.content)).toEqual(['José drinks mate']);
      expect(String((await callTool(jose.client, 'recall', { query: 'what does José drink?' })).body.prompt)).toMatch(
        /<memory id="m1" kind="memory" updated="[\d-]+">José drinks mate<\/memory>/,
      );
    } finally {
      await jose.transport.terminateSession();
      await jose.client.close();
    }
  });

  it("keeps a session to the tenant that opened it, and to its user's memories", async () => {
    await h.runtime.storeApi.put({
      namespace: ['globex', 'memories', 'u1'],
      key: 'k',
      value: { content: 'User u1 of globex likes tea' },
    });
    const acme = await connect({ authorization: `Bearer ${ACME}`, 'x-engram-context': '{"userId":"u1"}' });
    const sessionId = acme.transport.sessionId as string;
    try {
      // Same user id, other tenant: nothing of globex's is found.
      expect((await callTool(acme.client, 'search_memory', { query: 'User u1 of globex likes tea' })).body).toEqual({
        memories: [expect.objectContaining({ document: { content: 'User likes pasta' } })],
      });
      // Globex's key cannot use acme's session.
      const hijack = await fetch(`${h.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${GLOBEX}`,
          'mcp-session-id': sessionId,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });
      expect(hijack.status).toBe(404);
    } finally {
      await acme.transport.terminateSession();
      await acme.client.close();
    }
    // A terminated session is gone.
    const after = await fetch(`${h.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${ACME}`,
        'mcp-session-id': sessionId,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
    });
    expect(after.status).toBe(404);
  });

  it("caps a tenant's sessions without closing another tenant's", async () => {
    const globex = await connect({ authorization: `Bearer ${GLOBEX}`, 'x-engram-context': '{"userId":"u1"}' });
    const acmeIds: string[] = [];
    try {
      // More than the whole process' bound, which a global table let one tenant fill.
      for (let i = 0; i < MAX_SESSIONS + 1; i += 25) {
        const batch = Array.from({ length: Math.min(25, MAX_SESSIONS + 1 - i) }, () =>
          initialize({ authorization: `Bearer ${ACME}`, 'x-engram-context': '{"userId":"u1"}' }),
        );
        for (const res of await Promise.all(batch)) {
          expect(res.status).toBe(200);
          acmeIds.push(res.headers.get('mcp-session-id') as string);
          await res.body?.cancel();
        }
      }
      expect((await globex.client.listTools()).tools.length).toBeGreaterThan(0);
      const list = (key: string, sessionId: string) =>
        fetch(`${h.url}/mcp`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            authorization: `Bearer ${key}`,
            'mcp-session-id': sessionId,
            'mcp-protocol-version': '2025-06-18',
          },
          body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
        });
      // Acme's oldest went to make room for its newest.
      expect((await list(ACME, acmeIds[0] as string)).status).toBe(404);
      expect((await list(ACME, acmeIds.at(-MAX_TENANT_SESSIONS) as string)).status).toBe(200);
      await globex.transport.terminateSession();
    } finally {
      await globex.client.close();
    }
  });

  it('answers GET with 405 (no server-to-client stream) and a first request that is not initialize with 400', async () => {
    const auth = { authorization: `Bearer ${ACME}` };
    expect((await fetch(`${h.url}/mcp`, { headers: auth })).status).toBe(405);
    const res = await fetch(`${h.url}/mcp`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toContain('must be an MCP initialize request');
  });
});
