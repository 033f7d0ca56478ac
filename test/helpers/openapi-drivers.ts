import type { FakeModel } from '../fake-model/server.js';

/**
 * For test/openapi.test.ts: one request per documented answer (`METHOD /path status`, the path
 * as the document spells it), each of which must get that status. `down` runs it while that
 * dependency is out of reach (Postgres stopped, Redis stalled).
 */
export interface Driver {
  down?: 'postgres' | 'redis';
  send(c: DriverContext): Promise<number>;
}

export interface DriverContext {
  url: string;
  model: FakeModel;
  /** The tenant's key (`Authorization: Bearer`), when keys are on. */
  auth: Record<string, string>;
  /** The admin board's basic auth, when it has a password. */
  admin: Record<string, string>;
}

/** Namespaces under the tenant the test's key holds (any namespace does without keys). */
const NS = ['acme', 'oa'];
const NS_QUERY = 'namespace=acme&namespace=oa';
/** Over the API's 4 MiB body limit. */
const HUGE = `{"a":"${'x'.repeat(4.5 * 1024 * 1024)}"}`;

type Options = { body?: unknown; raw?: string; type?: string; auth?: boolean; headers?: Record<string, string> };

async function call(c: DriverContext, method: string, path: string, o: Options = {}): Promise<number> {
  const body = o.raw ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
  const headers: Record<string, string> = { ...(o.auth === false ? {} : c.auth), ...o.headers };
  if (body !== undefined) headers['content-type'] = o.type ?? 'application/json';
  const res = await fetch(`${c.url}${path}`, { method, headers, body });
  await res.arrayBuffer();
  return res.status;
}

const turn = (id: string, context: Record<string, string> = { userId: 'u1' }) => ({
  context,
  messages: [{ id, role: 'user', content: 'I like tea' }],
});

/** The answers every body route has: too large, not JSON, and (with keys) no key. */
function bodyRoute(method: string, path: string, docPath = path): Record<string, Driver> {
  return {
    [`${method} ${docPath} 413`]: { send: (c) => call(c, method, path, { raw: HUGE }) },
    [`${method} ${docPath} 415`]: { send: (c) => call(c, method, path, { raw: 'x', type: 'text/plain' }) },
  };
}

/** Without a key (401), and reaching outside the tenant (403). */
function keyed(method: string, path: string, outside: Options, docPath = path): Record<string, Driver> {
  const bare = path.replace(/\?.*/, '');
  return {
    [`${method} ${docPath} 401`]: { send: (c) => call(c, method, bare, { auth: false }) },
    [`${method} ${docPath} 403`]: { send: (c) => call(c, method, path, outside) },
  };
}

/** A memory tool's insert, as a remote tool session sends it (under a key, stamped with its tenant). */
const toolOp = { op: 'insert', kind: 'memory', document: { content: 'User likes tea' } };
const toolInsert = (userId: string, tenant?: string) => ({
  context: { userId, ...(tenant && { tenant }) },
  op: toolOp,
  actor: 'tool:manage_memory',
});

const pgDown = (send: Driver['send']): Driver => ({ down: 'postgres', send });

export function drivers(withKeys: boolean, withAdminPassword: boolean): Record<string, Driver> {
  const turns = '/v1/threads/{threadId}/turns';
  const all: Record<string, Driver> = {
    [`POST ${turns} 202`]: { send: (c) => call(c, 'POST', '/v1/threads/t-ok/turns', { body: turn('m1') }) },
    [`POST ${turns} 400`]: { send: (c) => call(c, 'POST', '/v1/threads/t-ok/turns', { body: {} }) },
    [`POST ${turns} 409`]: {
      async send(c) {
        await call(c, 'POST', '/v1/threads/t-409/turns', { body: turn('a', { userId: 'u1' }) });
        return call(c, 'POST', '/v1/threads/t-409/turns', { body: turn('b', { userId: 'u2' }) });
      },
    },
    [`POST ${turns} 503`]: {
      down: 'redis',
      send: (c) => call(c, 'POST', '/v1/threads/t-down/turns', { body: turn('m1') }),
    },
    ...bodyRoute('POST', '/v1/threads/t-ok/turns', turns),

    'GET /v1/memories/search 200': { send: (c) => call(c, 'GET', `/v1/memories/search?${NS_QUERY}&query=tea`) },
    'GET /v1/memories/search 400': { send: (c) => call(c, 'GET', `/v1/memories/search?${NS_QUERY}`) },
    'GET /v1/memories/search 413': {
      async send(c) {
        c.model.embeddingMaxChars = 5;
        try {
          return await call(c, 'GET', `/v1/memories/search?${NS_QUERY}&query=green%20tea`);
        } finally {
          c.model.embeddingMaxChars = Infinity;
        }
      },
    },
    'GET /v1/memories/search 503': pgDown((c) => call(c, 'GET', `/v1/memories/search?${NS_QUERY}&query=tea`)),

    'POST /v1/recall 200': {
      send: (c) => call(c, 'POST', '/v1/recall', { body: { context: { userId: 'u1' }, query: 'tea' } }),
    },
    'POST /v1/recall 400': { send: (c) => call(c, 'POST', '/v1/recall', { body: { context: { userId: 'u1' } } }) },
    'POST /v1/recall 503': pgDown((c) =>
      call(c, 'POST', '/v1/recall', { body: { context: { userId: 'u1' }, query: 'tea' } }),
    ),
    ...bodyRoute('POST', '/v1/recall'),

    'PUT /v1/store/items 200': {
      send: (c) => call(c, 'PUT', '/v1/store/items', { body: { namespace: NS, key: 'k1', value: { content: 'tea' } } }),
    },
    'PUT /v1/store/items 400': {
      send: (c) => call(c, 'PUT', '/v1/store/items', { body: { namespace: NS, key: 'k1' } }),
    },
    'PUT /v1/store/items 409': {
      send: (c) => call(c, 'PUT', '/v1/store/items', { body: { namespace: NS, key: 'k1', value: {}, ifVersion: 99 } }),
    },
    'PUT /v1/store/items 503': pgDown((c) =>
      call(c, 'PUT', '/v1/store/items', { body: { namespace: NS, key: 'k2', value: { a: 1 } } }),
    ),
    ...bodyRoute('PUT', '/v1/store/items'),

    'GET /v1/store/items 200': { send: (c) => call(c, 'GET', `/v1/store/items?${NS_QUERY}&key=k1`) },
    'GET /v1/store/items 400': { send: (c) => call(c, 'GET', `/v1/store/items?${NS_QUERY}`) },
    'GET /v1/store/items 404': { send: (c) => call(c, 'GET', `/v1/store/items?${NS_QUERY}&key=missing`) },
    'GET /v1/store/items 503': pgDown((c) => call(c, 'GET', `/v1/store/items?${NS_QUERY}&key=k1`)),

    'DELETE /v1/store/items 200': {
      send: (c) => call(c, 'DELETE', '/v1/store/items', { body: { namespace: NS, key: 'never' } }),
    },
    'DELETE /v1/store/items 400': { send: (c) => call(c, 'DELETE', '/v1/store/items', { body: { namespace: NS } }) },
    'DELETE /v1/store/items 409': {
      send: (c) => call(c, 'DELETE', '/v1/store/items', { body: { namespace: NS, key: 'k1', ifVersion: 99 } }),
    },
    'DELETE /v1/store/items 503': pgDown((c) =>
      call(c, 'DELETE', '/v1/store/items', { body: { namespace: NS, key: 'k1' } }),
    ),
    ...bodyRoute('DELETE', '/v1/store/items'),

    'POST /v1/store/items/search 200': {
      send: (c) => call(c, 'POST', '/v1/store/items/search', { body: { namespacePrefix: NS } }),
    },
    'POST /v1/store/items/search 400': {
      send: (c) => call(c, 'POST', '/v1/store/items/search', { body: { namespacePrefix: NS, limit: 0 } }),
    },
    'POST /v1/store/items/search 503': pgDown((c) =>
      call(c, 'POST', '/v1/store/items/search', { body: { namespacePrefix: NS } }),
    ),
    ...bodyRoute('POST', '/v1/store/items/search'),

    'GET /v1/store/items/history 200': { send: (c) => call(c, 'GET', `/v1/store/items/history?${NS_QUERY}&key=k1`) },
    'GET /v1/store/items/history 400': {
      send: (c) => call(c, 'GET', `/v1/store/items/history?${NS_QUERY}&key=k1&limit=0`),
    },
    'GET /v1/store/items/history 503': pgDown((c) => call(c, 'GET', `/v1/store/items/history?${NS_QUERY}&key=k1`)),
    'GET /v1/store/items/history 413': {
      // Six versions of a document of the largest text a value holds: a page of some 11 MB of
      // stored JSON (an update's row holds two documents), past the 8 MiB the test sets.
      async send(c) {
        for (let v = 0; v < 6; v++) {
          const value = { v, blob: 'x'.repeat(990_000) };
          const put = await call(c, 'PUT', '/v1/store/items', {
            body: { namespace: NS, key: 'big', value, index: false },
          });
          if (put !== 200) return put;
        }
        return call(c, 'GET', `/v1/store/items/history?${NS_QUERY}&key=big`);
      },
    },

    'POST /v1/store/namespaces 200': { send: (c) => call(c, 'POST', '/v1/store/namespaces') },
    'POST /v1/store/namespaces 400': { send: (c) => call(c, 'POST', '/v1/store/namespaces', { body: { limit: 0 } }) },
    'POST /v1/store/namespaces 503': pgDown((c) => call(c, 'POST', '/v1/store/namespaces')),
    ...bodyRoute('POST', '/v1/store/namespaces'),

    'POST /v1/store/batch 200': {
      send: (c) => call(c, 'POST', '/v1/store/batch', { body: { ops: [{ op: 'get', namespace: NS, key: 'k1' }] } }),
    },
    'POST /v1/store/batch 400': { send: (c) => call(c, 'POST', '/v1/store/batch', { body: { ops: 'all' } }) },
    'POST /v1/store/batch 409': {
      send: (c) =>
        call(c, 'POST', '/v1/store/batch', {
          body: { ops: [{ op: 'put', namespace: NS, key: 'k1', value: {}, ifVersion: 99 }] },
        }),
    },
    'POST /v1/store/batch 503': pgDown((c) =>
      call(c, 'POST', '/v1/store/batch', { body: { ops: [{ op: 'get', namespace: NS, key: 'k1' }] } }),
    ),
    ...bodyRoute('POST', '/v1/store/batch'),

    ...lifecycle(),

    'POST /v1/tools/apply 200': { send: (c) => call(c, 'POST', '/v1/tools/apply', { body: toolInsert('u1') }) },
    'POST /v1/tools/apply 400': {
      send: (c) =>
        call(c, 'POST', '/v1/tools/apply', { body: { ...toolInsert('u1'), op: { ...toolOp, document: {} } } }),
    },
    'POST /v1/tools/apply 403': {
      send: (c) =>
        call(c, 'POST', '/v1/tools/apply', {
          body: {
            ...toolInsert('u1'),
            op: { op: 'delete', target: { namespace: ['memories', 'u2'], key: 'k', kind: 'memory', version: 1 } },
          },
        }),
    },
    'POST /v1/tools/apply 503': pgDown((c) => call(c, 'POST', '/v1/tools/apply', { body: toolInsert('u1') })),
    ...bodyRoute('POST', '/v1/tools/apply'),
    'GET /v1/kinds 200': { send: (c) => call(c, 'GET', '/v1/kinds') },

    'GET /healthz 200': { send: (c) => call(c, 'GET', '/healthz') },
    'GET /readyz 200': { send: (c) => call(c, 'GET', '/readyz') },
    'GET /readyz 503': pgDown((c) => call(c, 'GET', '/readyz')),
    'GET /metrics 200': { send: (c) => call(c, 'GET', '/metrics') },
    'GET /openapi.json 200': { send: (c) => call(c, 'GET', '/openapi.json') },
    'GET /docs 200': { send: (c) => call(c, 'GET', '/docs') },
    'GET /admin/queues 200': { send: (c) => call(c, 'GET', '/admin/queues', { headers: c.admin }) },
  };
  if (withAdminPassword) all['GET /admin/queues 401'] = { send: (c) => call(c, 'GET', '/admin/queues') };
  if (!withKeys) return all;
  return {
    ...all,
    ...keyed('POST', '/v1/threads/t-ok/turns', { body: turn('m9', { userId: 'u1', tenant: 'globex' }) }, turns),
    ...keyed('GET', `/v1/memories/search?namespace=globex&query=tea`, {}, '/v1/memories/search'),
    ...keyed('POST', '/v1/recall', { body: { context: { userId: 'u1', tenant: 'globex' }, query: 'tea' } }),
    ...keyed('PUT', '/v1/store/items', { body: { namespace: ['globex'], key: 'k', value: {} } }),
    ...keyed('GET', '/v1/store/items?namespace=globex&key=k', {}, '/v1/store/items'),
    ...keyed('DELETE', '/v1/store/items', { body: { namespace: ['globex'], key: 'k' } }),
    ...keyed('POST', '/v1/store/items/search', { body: { namespacePrefix: ['globex'] } }),
    ...keyed('GET', '/v1/store/items/history?namespace=globex&key=k', {}, '/v1/store/items/history'),
    ...keyed('POST', '/v1/store/namespaces', { body: { prefix: ['globex'] } }),
    ...keyed('POST', '/v1/store/batch', { body: { ops: [{ op: 'get', namespace: ['globex'], key: 'k' }] } }),
    ...keyed('POST', '/v1/store/items/revert', { body: { namespace: ['globex'], key: 'k', version: 1 } }),
    ...keyed('POST', '/v1/revert', { body: { changedBy: 'x', namespacePrefix: ['globex'] } }),
    ...keyed('POST', '/v1/erase', { body: { namespacePrefix: ['globex'] } }),
    ...keyed('GET', '/v1/export?namespace=globex', {}, '/v1/export'),
    ...keyed('POST', '/v1/import', { raw: exportFile(['globex', 'oa'], 'x'), type: NDJSON }),
    ...keyed('POST', '/v1/tools/apply', { body: toolInsert('u1', 'globex') }),
    'GET /v1/kinds 401': { send: (c) => call(c, 'GET', '/v1/kinds', { auth: false }) },
  };
}

const NDJSON = 'application/x-ndjson';

/** A one-item export file (export-format.ts) under `namespace`. */
function exportFile(namespace: string[], key: string): string {
  const at = '2026-01-01T00:00:00.000Z';
  return [
    { type: 'export', format: 1, exportedAt: at, scope: {} },
    {
      type: 'item',
      namespace,
      key,
      kind: 'memory',
      value: { content: 'x' },
      version: 1,
      createdAt: at,
      updatedAt: at,
      expiresAt: null,
      ttlMs: null,
      validFrom: at,
      invalidAt: null,
      fields: [],
    },
  ]
    .map((l) => JSON.stringify(l))
    .join('\n');
}

/** The data lifecycle's routes: erase, export, import, revert. */
function lifecycle(): Record<string, Driver> {
  const put = (c: DriverContext, key: string, content: string, actor?: string) =>
    call(c, 'PUT', '/v1/store/items', { body: { namespace: NS, key, value: { content }, actor } });
  // Under a key, the actor history records is the caller's label behind the tenant.
  const recorded = (c: DriverContext, actor: string) => (c.auth.authorization ? `api:acme:${actor}` : actor);
  return {
    'POST /v1/store/items/revert 200': {
      async send(c) {
        await put(c, 'rv', 'one');
        await put(c, 'rv', 'two');
        return call(c, 'POST', '/v1/store/items/revert', { body: { namespace: NS, key: 'rv', version: 1 } });
      },
    },
    'POST /v1/store/items/revert 400': {
      send: (c) => call(c, 'POST', '/v1/store/items/revert', { body: { namespace: NS, key: 'rv', version: 0 } }),
    },
    'POST /v1/store/items/revert 409': {
      send: (c) =>
        call(c, 'POST', '/v1/store/items/revert', { body: { namespace: NS, key: 'rv', version: 1, ifVersion: 99 } }),
    },
    'POST /v1/store/items/revert 503': pgDown((c) =>
      call(c, 'POST', '/v1/store/items/revert', { body: { namespace: NS, key: 'rv', version: 1 } }),
    ),
    ...bodyRoute('POST', '/v1/store/items/revert'),

    'POST /v1/revert 200': { send: (c) => call(c, 'POST', '/v1/revert', { body: { changedBy: 'nobody' } }) },
    'POST /v1/revert 400': { send: (c) => call(c, 'POST', '/v1/revert', { body: {} }) },
    'POST /v1/revert 409': {
      async send(c) {
        await put(c, 'rc', 'first', 'oa-job');
        await put(c, 'rc', 'later', 'oa-other');
        return call(c, 'POST', '/v1/revert', { body: { changedBy: recorded(c, 'oa-job') } });
      },
    },
    'POST /v1/revert 503': pgDown((c) => call(c, 'POST', '/v1/revert', { body: { changedBy: 'nobody' } })),
    ...bodyRoute('POST', '/v1/revert'),

    'POST /v1/erase 200': {
      send: (c) => call(c, 'POST', '/v1/erase', { body: { namespacePrefix: [...NS, 'erased'] } }),
    },
    'POST /v1/erase 400': { send: (c) => call(c, 'POST', '/v1/erase', { body: { namespacePrefix: [] } }) },
    'POST /v1/erase 503': pgDown((c) => call(c, 'POST', '/v1/erase', { body: { namespacePrefix: [...NS, 'erased'] } })),
    ...bodyRoute('POST', '/v1/erase'),

    'GET /v1/export 200': { send: (c) => call(c, 'GET', `/v1/export?${NS_QUERY}&history=true`) },
    'GET /v1/export 400': { send: (c) => call(c, 'GET', `/v1/export?${NS_QUERY}&context={}`) },
    'GET /v1/export 503': pgDown((c) => call(c, 'GET', `/v1/export?${NS_QUERY}`)),

    'POST /v1/import 200': {
      send: (c) => call(c, 'POST', '/v1/import', { raw: exportFile([...NS, 'imported'], 'a'), type: NDJSON }),
    },
    'POST /v1/import 400': { send: (c) => call(c, 'POST', '/v1/import', { raw: '{"type":"item"}', type: NDJSON }) },
    'POST /v1/import 409': {
      async send(c) {
        await call(c, 'POST', '/v1/import', { raw: exportFile([...NS, 'imported'], 'b'), type: NDJSON });
        return call(c, 'POST', '/v1/import', { raw: exportFile([...NS, 'imported'], 'b'), type: NDJSON });
      },
    },
    'POST /v1/import 413': {
      send: (c) => call(c, 'POST', '/v1/import', { raw: 'x'.repeat(65 * 1024 * 1024), type: NDJSON }),
    },
    'POST /v1/import 415': { send: (c) => call(c, 'POST', '/v1/import', { raw: 'x', type: 'text/plain' }) },
    'POST /v1/import 503': pgDown((c) =>
      call(c, 'POST', '/v1/import', { raw: exportFile([...NS, 'imported'], 'c'), type: NDJSON }),
    ),
  };
}
