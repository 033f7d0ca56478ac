import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AuthError, defaultKinds, defineKind, EngramHttpClient, InputError } from '../src/client/index.js';
import type { EngramClient } from '../src/sdk/index.js';
import { foodieModel } from './fake-model/foodie.js';
import { startHarness, type Harness } from './helpers/harness.js';
import {
  lifecycleScenario,
  sdkClientOf,
  staleUpdateScenario,
  storedContents,
  toolCall,
  toolThenReflectionScenario,
} from './helpers/tool-session.js';
import { HOSTILE_API_KEYS, HOSTILE_KEYS, nestedJson as nested, send, tenantKind } from './helpers/hostile.js';

const call = toolCall;

/** The memory tools of engram/client, against a running API over real Redis and Postgres. */
describe('memory tools over HTTP (engram/client)', () => {
  let h: Harness;
  let client: EngramHttpClient;
  let sdk: EngramClient;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api', 'reflection'], chat: foodieModel });
    client = new EngramHttpClient({ url: h.url });
    sdk = sdkClientOf(h);
  });
  afterAll(async () => {
    await sdk?.close();
    await h?.stop();
  });

  const stored = (user: string) => storedContents(client.store, user);

  it("lists the SDK's definitions, for the default kinds and for given ones", () => {
    const context = { userId: 'u0' };
    expect(client.memoryTools({ context }).tools).toEqual(sdk.memoryTools({ context }).tools);
    const note = defineKind({ ...defaultKinds[0]!, name: 'note', schema: z.object({ text: z.string() }) });
    const kinds = [...defaultKinds, note];
    expect(client.memoryTools({ context, kinds }).tools).toEqual(sdk.memoryTools({ context, kinds }).tools);
    expect(client.memoryTools({ context }).tools.map((t) => t.function.name)).toEqual([
      'manage_memory',
      'search_memory',
    ]);
  });

  it('creates, finds, updates and deletes over HTTP, each with history by tool:manage_memory', async () => {
    // search_memory is a recall over HTTP; each write goes to POST /v1/tools/apply.
    await lifecycleScenario(client, 'u1');
  });

  it('answers a stale version with a conflict message showing the memory now, and writes nothing', async () => {
    await staleUpdateScenario(client, 'u3');
  });

  it('answers a bad document with what to fix, and writes nothing', async () => {
    const session = client.memoryTools({ context: { userId: 'u2' } });
    const bad = await call(session, 'manage_memory', { action: 'create', document: { text: 'User plays go' } });
    expect(bad.error).toContain('the document does not match the "memory" schema');
    expect(bad.error).toContain('content');
    // The model repairs its call from the message.
    expect(await call(session, 'manage_memory', { action: 'create', document: { content: 'User plays go' } })).toEqual({
      result: 'created',
      id: 'm1',
    });
    expect(await stored('u2')).toEqual(['User plays go']);
  });

  it('checks on the service what a session sends: the document, kind, actor and namespace', async () => {
    const insert = { op: 'insert', kind: 'memory', document: { content: 'User likes tea' } };
    const body = (over: object) => JSON.stringify({ context: { userId: 'u6' }, op: insert, actor: 'tool:x', ...over });
    const refused: [object, number, RegExp][] = [
      [{ op: { ...insert, document: { content: '' } } }, 400, /document does not match the "memory" schema/],
      [{ op: { ...insert, document: { content: 'a\u0000b' } } }, 400, /NUL/],
      // A field the kind does not name would be dropped by its schema: refused, not lost.
      [
        { op: { ...insert, document: { content: 'User likes tea', source: 'chat', mood: 1 } } },
        400,
        /^the document has fields the "memory" schema does not name: source, mood \(its fields: content/,
      ],
      [{ op: { ...insert, kind: 'note' } }, 400, /"note" is not one the tools manage/],
      [{ actor: 'api' }, 400, /tool:<name>/],
      [{ op: { op: 'upsert', kind: 'memory', document: {} } }, 400, /op/],
      [{ op: { ...insert, document: { content: 'x', more: JSON.parse(nested(70)) as unknown } } }, 400, /deeper/],
      [
        { op: { op: 'delete', target: { namespace: ['memories', 'u6'], key: 'k', kind: 'memory', version: 0 } } },
        400,
        /version/,
      ],
      [{ context: { user: 'u6' } }, 400, /needs context.userId/],
      [
        {
          op: {
            op: 'delete',
            target: { namespace: ['memories', 'u7'], key: 'k', kind: 'memory', version: 1 },
          },
        },
        403,
        /outside this session's namespaces/,
      ],
    ];
    const proto = body({}).replace('{"content":"User likes tea"}', '{"__proto__":{"content":"x"}}');
    expect(proto).toContain('__proto__');
    const answer = await send(h, 'POST', '/v1/tools/apply', proto);
    expect([answer.status, answer.body.error]).toEqual([400, expect.stringContaining('__proto__')]);
    await client.store.put(['memories', 'u7'], 'k', { content: 'User u7 likes jazz' });
    for (const [over, status, says] of refused) {
      const answer = await send(h, 'POST', '/v1/tools/apply', body(over));
      expect([answer.status, answer.body.error], JSON.stringify(over)).toEqual([status, expect.stringMatching(says)]);
    }
    expect(await stored('u6')).toEqual([]);
    expect(await stored('u7')).toEqual(['User u7 likes jazz']);
    // The service's kinds, for a remote session to check its own against.
    const kinds = await send(h, 'GET', '/v1/kinds');
    expect(kinds.body.kinds).toEqual([
      expect.objectContaining({ name: 'memory', namespace: ['memories', '{userId}'], mode: 'collection' }),
    ]);
  });

  it("refuses kinds that are not the service's before the model's first call", async () => {
    const elsewhere = defineKind({ ...defaultKinds[0]!, namespace: ['elsewhere', '{userId}'] });
    const session = client.memoryTools({ context: { userId: 'u1' }, kinds: [elsewhere] });
    await expect(call(session, 'search_memory', { query: 'x' })).rejects.toThrow(/differs from the service's/);
    expect(() => client.memoryTools({ context: { user: 'u1' } })).toThrow(InputError);
  });

  it("shows a tool's memory to the next reflection as existing, so the two paths store a fact once", async () => {
    await toolThenReflectionScenario(client, h.model, 'u9');
  });
});

describe('memory tools over HTTP under API keys', () => {
  let h: Harness;
  const acme = () => new EngramHttpClient({ url: h.url, apiKey: HOSTILE_KEYS.acme });
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api'],
      env: { API_KEYS: HOSTILE_API_KEYS, ADMIN_PASSWORD: 'board-password' },
      runtime: { kinds: [tenantKind] },
    });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it("writes in the key's tenant, and cannot reach another tenant's namespaces", async () => {
    const operator = new EngramHttpClient({ url: h.url, apiKey: HOSTILE_KEYS.ops });
    await operator.store.put(['globex', 'memories', 'u1'], 'g', { content: 'Globex user likes jazz' });
    const session = acme().memoryTools({ context: { tenant: 'acme', userId: 'u1' }, kinds: [tenantKind] });
    expect(await call(session, 'manage_memory', { action: 'create', document: { content: 'User likes tea' } })).toEqual(
      { result: 'created', id: 'm1' },
    );
    const [mine] = await acme().store.search(['acme', 'memories', 'u1'], {});
    expect(mine).toMatchObject({ value: { content: 'User likes tea' } });
    expect((await acme().store.history(['acme', 'memories', 'u1'], mine!.key))[0]?.actor).toBe('tool:manage_memory');
    // Another tenant's context is refused, whatever the session's kinds say.
    const theirs = acme().memoryTools({ context: { tenant: 'globex', userId: 'u1' }, kinds: [tenantKind] });
    await expect(
      call(theirs, 'manage_memory', { action: 'create', document: { content: 'User likes coffee' } }),
    ).rejects.toThrow(AuthError);
    await expect(call(theirs, 'search_memory', { query: 'jazz' })).rejects.toThrow(AuthError);
    // A session of its own tenant, sending a target in another's namespace, is refused too.
    const target = { namespace: ['globex', 'memories', 'u1'], key: 'g', kind: 'memory', version: 1 };
    const answer = await send(
      h,
      'POST',
      '/v1/tools/apply',
      JSON.stringify({ context: { userId: 'u1' }, op: { op: 'delete', target }, actor: 'tool:manage_memory' }),
      { authorization: `Bearer ${HOSTILE_KEYS.acme}` },
    );
    expect(answer.status).toBe(403);
    const globex = await operator.store.search(['globex'], {});
    expect(globex.map((i) => [i.key, i.version, i.value.content])).toEqual([['g', 1, 'Globex user likes jazz']]);
  });
});
