import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Runtime } from '../src/app/runtime.js';
import { createLogger } from '../src/observability/logger.js';
import { defaultKinds, defineKind } from '../src/memory/kinds.js';
import { readPrompt } from './fake-model/server.js';
import {
  redisKeys,
  reflectionJobs,
  startHarness,
  TEST_REDIS_URL,
  testEnv,
  waitFor,
  type Harness,
} from './helpers/harness.js';

const KEYS = {
  acme: 'acme-key-0123456789',
  acme2: 'acme2-key-0123456789',
  globex: 'globex-key-0123456789',
  ops: 'ops-key-0123456789abc',
};
const API_KEYS = `acme:${KEYS.acme},acme2:${KEYS.acme2},globex:${KEYS.globex},*:${KEYS.ops}`;
const tenantKind = defineKind({
  name: 'memory',
  description: 'A fact',
  namespace: ['{tenant}', 'memories', '{userId}'],
  schema: z.object({ content: z.string() }),
});

/** Invariant 6: a key reaches only its tenant's namespaces, whatever the request says. */
describe('tenant-scoped API keys', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api', 'reflection'],
      chat: (req) => ({
        toolCalls: readPrompt(req).turns.map((t) => ({ name: 'insert_memory', arguments: { content: t.content } })),
      }),
      env: { API_KEYS, ADMIN_PASSWORD: 'board-password', DEBOUNCE_MS: '100' },
      runtime: { kinds: [tenantKind] },
    });
  });
  afterAll(async () => h?.stop());

  const call = async (method: string, path: string, key: string | null, body?: unknown) => {
    const headers: Record<string, string> = {};
    if (key) headers.authorization = `Bearer ${key}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${h.url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const turn = (content: string, context: Record<string, string> = { userId: 'u1' }) => ({
    context,
    messages: [{ role: 'user', content }],
  });

  it('refuses requests without a valid key, however the path is spelled; health stays open', async () => {
    expect((await call('POST', '/v1/threads/t/turns', null, turn('hi'))).status).toBe(401);
    // %76 is "v": the router serves /v1/... for it, so the check must look at the route.
    expect((await call('GET', '/%761/store/items?namespace=acme&namespace=notes&key=k', null)).status).toBe(401);
    expect((await call('POST', '/%761/store/items/search', null, { namespacePrefix: [] })).status).toBe(401);
    expect(
      (await call('POST', '/%761/threads/t/turns', null, turn('hi', { userId: 'u1', tenant: 'acme' }))).status,
    ).toBe(401);
    expect((await call('POST', '/v1/threads/t/turns', 'wrong-key-0123456789', turn('hi'))).status).toBe(401);
    expect((await call('POST', '/v1/store/items/search', null, {})).status).toBe(401);
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
    // The scheme's name is case-insensitive (RFC 9110): a valid key under `bearer` is taken.
    const lower = await fetch(`${h.url}/v1/store/items/search`, {
      method: 'POST',
      headers: { authorization: `bearer ${KEYS.acme}`, 'content-type': 'application/json' },
      body: JSON.stringify({ namespacePrefix: ['acme'] }),
    });
    expect(lower.status).toBe(200);
  });

  it("files a tenant's turns under its namespace, and only that tenant finds them", async () => {
    expect((await call('POST', '/v1/threads/acme-t1/turns', KEYS.acme, turn('I am allergic to peanuts'))).status).toBe(
      202,
    );
    const search = (key: string, ns: string[]) =>
      call('GET', `/v1/memories/search?${ns.map((l) => `namespace=${l}`).join('&')}&query=peanuts`, key);
    const found = await waitFor(async () => {
      const r = await search(KEYS.acme, ['acme', 'memories', 'u1']);
      return r.body.memories?.length ? r.body.memories : null;
    });
    expect(found[0].value.content).toBe('I am allergic to peanuts');
    expect((await search(KEYS.globex, ['acme', 'memories', 'u1'])).status).toBe(403);
    expect((await search(KEYS.acme2, ['acme', 'memories', 'u1'])).status).toBe(403); // whole labels: acme2 is not acme
    expect((await search(KEYS.globex, ['globex', 'memories', 'u1'])).body.memories).toEqual([]);
    expect((await search(KEYS.ops, ['acme', 'memories', 'u1'])).body.memories).toHaveLength(1);
  });

  it("tenants' threads of the same name share nothing", async () => {
    const before = h.model.chatRequests.length;
    expect(
      (
        await call('POST', '/v1/threads/shared/turns', KEYS.acme, {
          context: { userId: 'alice' },
          messages: [{ id: 'm1', role: 'user', content: 'acme: I fly to Oslo' }],
        })
      ).status,
    ).toBe(202);
    // Same thread name, same message id, another tenant and user: neither refused nor deduplicated.
    const other = await call('POST', '/v1/threads/shared/turns', KEYS.globex, {
      context: { userId: 'bob' },
      messages: [{ id: 'm1', role: 'user', content: 'globex: I fly to Rome' }],
    });
    expect(other.status).toBe(202);
    expect(other.body).toEqual({ threadId: 'shared', accepted: 1, duplicates: 0 });
    await waitFor(() => h.model.chatRequests.length >= before + 2);
    const prompts = h.model.chatRequests.slice(before).map((r) => JSON.stringify(readPrompt(r)));
    expect(prompts.filter((p) => p.includes('Oslo') && p.includes('Rome'))).toEqual([]);
  });

  it('refuses turns that claim another tenant in their context', async () => {
    const res = await call('POST', '/v1/threads/t-x/turns', KEYS.globex, turn('hi', { userId: 'u1', tenant: 'acme' }));
    expect(res.status).toBe(403);
    expect(res.body.error).toMatch(/not your tenant/);
  });

  it("refuses an operator's turns whose context.tenant is no tenant name, and buffers nothing", async () => {
    const redis = new Redis(TEST_REDIS_URL);
    try {
      // Each would be filed as "<tenant>/op-bad", a thread id the reflection job refuses.
      for (const tenant of ['Acme Corp', 'acme/x', '-acme', 'a'.repeat(65)]) {
        const res = await call('POST', '/v1/threads/op-bad/turns', KEYS.ops, turn('hi', { userId: 'u1', tenant }));
        expect(res.status).toBe(400);
        expect(res.body.error).toMatch(/^context\.tenant ".*" is not a tenant name: it must be 1 to 64 characters/);
      }
      expect((await redisKeys(redis, h.env.ENGRAM_PREFIX)).filter((k) => k.includes('op-bad'))).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });

  it("refuses an operator's context.tenant that is no tenant name on every route that takes a context", async () => {
    const context = { userId: 'u1', tenant: 'Acme Corp' };
    const refused = [
      await call('POST', '/v1/tools/apply', KEYS.ops, {
        context,
        op: { op: 'insert', kind: 'memory', document: { content: 'nobody can read this' } },
        actor: 'tool:manage_memory',
      }),
      await call('POST', '/v1/recall', KEYS.ops, { context, query: 'anything' }),
      // An export that is not refused answers NDJSON: read as text, so the status is what fails.
      await fetch(`${h.url}/v1/export?context=${encodeURIComponent(JSON.stringify(context))}`, {
        headers: { authorization: `Bearer ${KEYS.ops}` },
      }).then(async (r) => ({ status: r.status, body: JSON.parse((await r.text()).split('\n')[0] as string) })),
      await call('POST', '/v1/erase', KEYS.ops, { context }),
    ];
    for (const res of refused) {
      expect(res.status).toBe(400);
      expect(res.body.error).toMatch(
        /^context\.tenant "Acme Corp" is not a tenant name: it must be 1 to 64 characters/,
      );
    }
    // The memory browser's erase form is an operator's erase too (its tenant field).
    const admin = {
      authorization: `Basic ${Buffer.from('admin:board-password').toString('base64')}`,
      origin: h.url,
      'content-type': 'application/x-www-form-urlencoded',
    };
    const byForm = await fetch(`${h.url}/admin/memories/erase?userId=u1&tenant=Acme+Corp`, {
      method: 'POST',
      redirect: 'manual',
      headers: admin,
      body: 'confirm=yes',
    });
    expect(byForm.status).toBe(400);
    expect(await byForm.text()).toContain('context.tenant &quot;Acme Corp&quot; is not a tenant name');
    const confirmPage = await fetch(`${h.url}/admin/memories/erase/confirm?userId=u1&tenant=Acme+Corp`, {
      headers: { authorization: admin.authorization },
    });
    expect(confirmPage.status).toBe(400);
    // The tool write above would have filed a memory under a first label no key can hold.
    const listed = await call('POST', '/v1/store/namespaces', KEYS.ops, { prefix: ['Acme Corp'] });
    expect(listed.body.namespaces).toEqual([]);
    // A tenant name is taken as before.
    expect(
      (await call('POST', '/v1/recall', KEYS.ops, { context: { userId: 'u1', tenant: 'acme' }, query: 'x' })).status,
    ).toBe(200);
  });

  it('confines the store API: writes, reads, searches, listings and batches', async () => {
    expect(
      (
        await call('PUT', '/v1/store/items', KEYS.globex, {
          namespace: ['globex', 'notes'],
          key: 'k',
          value: { text: 'globex secret' },
          actor: 'acme-admin',
        })
      ).status,
    ).toBe(200);
    // History names the key's tenant first, whatever the body claims.
    const history = await call('GET', '/v1/store/items/history?namespace=globex&namespace=notes&key=k', KEYS.globex);
    expect(history.body.history.map((e: { actor: string }) => e.actor)).toEqual(['api:globex:acme-admin']);
    expect(
      (
        await call('PUT', '/v1/store/items', KEYS.acme, {
          namespace: ['acme', 'notes'],
          key: 'k',
          value: { text: 'acme secret' },
        })
      ).status,
    ).toBe(200);
    const blocked = await call('PUT', '/v1/store/items', KEYS.globex, {
      namespace: ['acme', 'notes'],
      key: 'k2',
      value: { text: 'planted' },
    });
    expect(blocked.status).toBe(403);
    expect((await call('GET', '/v1/store/items?namespace=acme&namespace=notes&key=k', KEYS.globex)).status).toBe(403);
    expect(
      (await call('GET', '/v1/store/items/history?namespace=acme&namespace=notes&key=k', KEYS.globex)).status,
    ).toBe(403);

    // No prefix means the tenant's root, not everything.
    const mine = await call('POST', '/v1/store/items/search', KEYS.globex, {});
    const items = mine.body.items as { namespace: string[]; value: { text?: string } }[];
    expect(items.map((i) => i.value.text)).toContain('globex secret');
    expect(items.map((i) => i.value.text)).not.toContain('acme secret');
    expect(items.every((i) => i.namespace[0] === 'globex')).toBe(true);
    const listed = await call('POST', '/v1/store/namespaces', KEYS.globex, {});
    expect(listed.body.namespaces).toContainEqual(['globex', 'notes']);
    expect((listed.body.namespaces as string[][]).every((ns) => ns[0] === 'globex')).toBe(true);
    expect((await call('POST', '/v1/store/namespaces', KEYS.globex, { prefix: ['acme'] })).status).toBe(403);

    // One op outside the tenant refuses the whole batch: nothing of it is written.
    const batch = await call('POST', '/v1/store/batch', KEYS.globex, {
      ops: [
        { op: 'put', namespace: ['globex', 'notes'], key: 'k3', value: { text: 'fine' } },
        { op: 'delete', namespace: ['acme', 'notes'], key: 'k' },
      ],
    });
    expect(batch.status).toBe(403);
    expect((await call('GET', '/v1/store/items?namespace=globex&namespace=notes&key=k3', KEYS.globex)).status).toBe(
      404,
    );
    expect(
      (await call('GET', '/v1/store/items?namespace=acme&namespace=notes&key=k', KEYS.acme)).body.item.value.text,
    ).toBe('acme secret');

    const all = await call('POST', '/v1/store/namespaces', KEYS.ops, {});
    expect(all.body.namespaces).toEqual(
      expect.arrayContaining([
        ['acme', 'notes'],
        ['globex', 'notes'],
      ]),
    );

    // An operator's key writes into any tenant, and history says it was the operator's.
    expect(
      (
        await call('PUT', '/v1/store/items', KEYS.ops, {
          namespace: ['acme', 'notes'],
          key: 'k',
          value: { text: 'fixed by ops' },
          actor: 'oncall',
        })
      ).status,
    ).toBe(200);
    const batched = await call('POST', '/v1/store/batch', KEYS.ops, {
      ops: [{ op: 'put', namespace: ['globex', 'notes'], key: 'k4', value: { text: 'ops' } }],
    });
    expect(batched.status).toBe(200);
    const acmeHistory = await call('GET', '/v1/store/items/history?namespace=acme&namespace=notes&key=k', KEYS.acme);
    expect(acmeHistory.body.history.map((e: { actor: string }) => e.actor)).toEqual(['api:acme', 'api:*:oncall']);
    const globexHistory = await call(
      'GET',
      '/v1/store/items/history?namespace=globex&namespace=notes&key=k4',
      KEYS.globex,
    );
    expect(globexHistory.body.history.map((e: { actor: string }) => e.actor)).toEqual(['api:*']);
  });

  it('Bull Board asks for its password', async () => {
    expect((await fetch(`${h.url}/admin/queues`)).status).toBe(401);
    const wrong = `Basic ${Buffer.from('admin:nope').toString('base64')}`;
    expect((await fetch(`${h.url}/admin/queues`, { headers: { authorization: wrong } })).status).toBe(401);
    const right = `Basic ${Buffer.from('admin:board-password').toString('base64')}`;
    expect((await fetch(`${h.url}/admin/queues`, { headers: { authorization: right } })).status).toBe(200);
    expect((await fetch(`${h.url}/admin/queues/api/queues`, { headers: { authorization: right } })).status).toBe(200);
    expect((await fetch(`${h.url}/admin/queues/api/queues`)).status).toBe(401);
    // The scheme's name is case-insensitive (RFC 9110), as Bearer's is on /v1.
    const credentials = Buffer.from('admin:board-password').toString('base64');
    for (const scheme of ['basic', 'BASIC'])
      expect(
        (await fetch(`${h.url}/admin/memories`, { headers: { authorization: `${scheme} ${credentials}` } })).status,
      ).toBe(200);
    for (const authorization of [`Bearer ${credentials}`, `Basic ${credentials}x`, `Basic${credentials}`, credentials])
      expect((await fetch(`${h.url}/admin/memories`, { headers: { authorization } })).status).toBe(401);
  });

  it("a tenant's key opens no admin page, and the routes without a key name no tenant", async () => {
    for (const path of ['/admin/queues', '/admin/queues/api/queues', '/admin/memories']) {
      for (const headers of [{ authorization: `Bearer ${KEYS.acme}` }, { 'x-api-key': KEYS.ops }] as Record<
        string,
        string
      >[])
        expect((await fetch(`${h.url}${path}`, { headers })).status, path).toBe(401);
    }
    // Earlier tests sent turns and items for acme, globex and their users u1, alice and bob.
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toContain('engram_turns_enqueued_total');
    expect(metrics).not.toMatch(/acme|globex|alice|bob|"u1"|notes/);
  });

  it('refuses keys without a Bull Board password: the board shows every tenant', () => {
    expect(() => testEnv('http://127.0.0.1:9/v1', { API_KEYS })).toThrow(
      /ADMIN_PASSWORD: is required when API_KEYS is set/,
    );
  });

  it('refuses to start when keys are set but a kind does not write under "{tenant}"', () => {
    const env = testEnv('http://127.0.0.1:9/v1', { API_KEYS, ADMIN_PASSWORD: 'board-password' });
    expect(() => new Runtime(env, createLogger({ level: 'silent' }), { kinds: defaultKinds })).toThrow(
      /must start with "\{tenant\}"; not: memory \["memories","\{userId\}"\]/,
    );
  });
});

/**
 * The "{tenant}" check of the kinds runs at start where API_KEYS is set: the API. A reflection
 * process started with other kinds (the built-in `["memories", "{userId}"]` here) must still keep
 * a tenant's thread inside its tenant, rather than file two tenants' users in one namespace.
 */
describe('a reflection process whose kinds do not start with "{tenant}"', () => {
  let h: Harness;
  let reflection: Runtime;
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api'],
      chat: (req) => ({
        toolCalls: readPrompt(req).turns.map((t) => ({ name: 'insert_memory', arguments: { content: t.content } })),
      }),
      env: { API_KEYS, ADMIN_PASSWORD: 'board-password', DEBOUNCE_MS: '100' },
      runtime: { kinds: [tenantKind] },
    });
    // The same deployment (Redis prefix, schema, model), without API_KEYS and with the defaults.
    const env = { ...h.env, API_KEYS: undefined, ADMIN_PASSWORD: undefined };
    reflection = new Runtime(env, createLogger({ level: 'silent' }), { kinds: defaultKinds, ceilingIntervalMs: 200 });
    await reflection.start(['reflection']);
  });
  afterAll(async () => {
    await reflection?.stop();
    await h?.stop();
  });

  it("fails the tenant's reflection for good, and writes nothing outside the tenant", async () => {
    const send = (key: string, content: string) =>
      fetch(`${h.url}/v1/threads/t1/turns`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ context: { userId: 'u1' }, messages: [{ role: 'user', content }] }),
      });
    expect((await send(KEYS.acme, 'acme: my PIN is 1234')).status).toBe(202);
    expect((await send(KEYS.globex, 'globex: I like tea')).status).toBe(202);
    // Both jobs end, one way or the other: then nothing may be stored outside the tenants.
    const ended = await waitFor(async () => {
      const jobs = await reflectionJobs(h.runtime, ['completed', 'failed']);
      return jobs.length === 2 ? jobs : null;
    });
    const stored = await h.runtime.storeApi.search({ namespacePrefix: [], limit: 100 });
    expect(stored.map((m) => [m.namespace, m.value.content])).toEqual([]);
    for (const job of ended)
      expect(job.failedReason).toMatch(
        /belongs to tenant "(acme|globex)", but memory kind "memory" fills \["memories","u1"\]/,
      );
    expect(h.model.chatRequests).toHaveLength(0);
  });
});
