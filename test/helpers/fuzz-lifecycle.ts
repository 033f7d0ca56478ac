import fc from 'fast-check';
import {
  badBodies,
  badInt,
  badNamespace,
  badText,
  badValue,
  bodyRequest,
  contentType,
  notString,
  PROTO,
  queryRequest,
  queryValue,
  toJson,
  unstorable,
  withHead,
  type FuzzRequest,
  type RouteFuzz,
  type Template,
} from './fuzz-requests.js';

/**
 * Generated bad requests for the lifecycle routes (erase, revert, export, import), the memory
 * tools' (/v1/tools/apply, /v1/kinds), MCP, and the read-only operations routes. As in
 * fuzz-requests.ts, every request to a writing route carries a defect the API must refuse.
 */

/** Contexts no route takes. */
const badContext = fc.oneof(
  fc.constantFrom<unknown>(null, [], 'u1', { '1bad': 'x' }, { userId: '' }, { userId: 'x'.repeat(257) }, PROTO),
  unstorable.map((s) => ({ userId: s })),
  notString.map((v) => ({ userId: v })),
);
/** A tool operation no route takes: its shape, its kind, its target or its document. */
const badToolOp = (ns: string[]) => {
  const target = { namespace: ns, key: 'k1', kind: 'memory', version: 1 };
  return fc.oneof(
    fc.constantFrom<unknown>(null, [], 'insert', { op: 'upsert' }, { op: 'constructor' }, { op: 'insert' }, PROTO),
    fc.constantFrom<unknown>(
      { op: 'insert', kind: 'Bad-Kind', document: { content: 'x' } },
      { op: 'insert', kind: 'memory', document: 'x' },
      { op: 'insert', kind: 'memory', document: { content: 'x' }, extra: 1 },
      { op: 'delete', target: { ...target, version: 0 } },
      { op: 'delete', target: { ...target, kind: 'Nope!' } },
      { op: 'delete', target: { ...target, namespace: [] } },
      { op: 'update', target, document: null },
      { op: 'delete' },
    ),
    badValue.map((document) => ({ op: 'insert', kind: 'memory', document })),
    badNamespace(ns).map((namespace) => ({ op: 'delete', target: { ...target, namespace } })),
    badText(1_024).map((key) => ({ op: 'delete', target: { ...target, key } })),
    badInt(1, Number.MAX_SAFE_INTEGER).map((version) => ({ op: 'delete', target: { ...target, version } })),
  );
};

export function templates(tenant: string): Record<string, Template> {
  const ns = [tenant, 'fuzz', 'u1'];
  return {
    revertItem: {
      method: 'POST',
      path: '/v1/store/items/revert',
      body: { namespace: ns, key: 'k1', version: 1, ifVersion: 1, actor: 'fuzz' },
      writes: true,
      breaks: {
        namespace: badNamespace(ns),
        key: badText(1_024),
        version: badInt(1, Number.MAX_SAFE_INTEGER),
        ifVersion: badInt(0, Number.MAX_SAFE_INTEGER),
        actor: badText(200),
      },
    },
    revert: {
      method: 'POST',
      path: '/v1/revert',
      body: { changedBy: 'reflection:fuzz', namespacePrefix: [tenant], actor: 'fuzz' },
      writes: true,
      breaks: {
        changedBy: badText(200),
        force: fc.constantFrom<unknown>('true', 1, null, [], {}),
        namespacePrefix: badNamespace(ns).filter((v) => !(Array.isArray(v) && v.length === 0)),
        actor: badText(200),
      },
    },
    // Erase takes a context or a prefix, not both: `context` breaks it whatever its value.
    erase: {
      method: 'POST',
      path: '/v1/erase',
      body: { namespacePrefix: [tenant, 'fuzz', 'nobody'] },
      writes: true,
      breaks: {
        namespacePrefix: badNamespace(ns),
        context: fc.oneof(badContext, fc.constant({ userId: 'u1' })),
      },
    },
    tools: {
      method: 'POST',
      path: '/v1/tools/apply',
      body: {
        context: { userId: 'u1' },
        op: { op: 'insert', kind: 'memory', document: { content: 'User likes tea' } },
        actor: 'tool:manage_memory',
      },
      writes: true,
      breaks: {
        context: badContext,
        op: badToolOp(ns),
        actor: fc.oneof(
          fc.constantFrom<unknown>('tool:', 'tool:Bad', 'manage_memory', 'tool:a\u0000', 'tool:\ud800', 1, null),
          badText(200),
        ),
      },
    },
  };
}

/** A valid export's header, for import files with one defect each. */
const HEADER = { type: 'export', format: 1, exportedAt: '2026-01-02T03:04:05Z', scope: {} };
const ITEM = {
  type: 'item',
  key: 'imported',
  kind: 'memory',
  value: { content: 'x' },
  version: 1,
  createdAt: '2026-01-02T03:04:05Z',
  updatedAt: '2026-01-02T03:04:05Z',
  expiresAt: null,
  ttlMs: null,
  validFrom: '2026-01-02T03:04:05Z',
  invalidAt: null,
  fields: [{ field: 'content', text: 'x' }],
};
/** Over the import's own limit (64 MiB): made once, sent rarely. */
let overImport: string | undefined;

/** Import files each of which the import must refuse whole. */
function importRequest(tenant: string): fc.Arbitrary<FuzzRequest> {
  const ns = [tenant, 'imported'];
  const item = (over: Record<string, unknown>) => toJson({ ...ITEM, namespace: ns, ...over });
  const header = JSON.stringify(HEADER);
  const brokenItem = fc.oneof(
    fc.constantFrom('Bad-Kind', '', 'k'.repeat(64), '1kind', 'a b').map((kind) => ({ kind })),
    unstorable.map((kind) => ({ kind })),
    badText(1_024).map((key) => ({ key })),
    badNamespace(ns).map((namespace) => ({ namespace })),
    badValue.map((value) => ({ value })),
    badInt(1, Number.MAX_SAFE_INTEGER).map((version) => ({ version })),
    fc.constantFrom<unknown>('yesterday', 1, null, '2026-13-45T00:00:00Z').map((createdAt) => ({ createdAt })),
    fc.constantFrom<unknown>([null], [{ field: '', text: 'x' }], 'content').map((fields) => ({ fields })),
    fc.constant({ extra: 1 }),
    fc.constant({ type: 'memory' }),
  );
  const files = fc.oneof(
    brokenItem.map((over) => ({ body: `${header}\n${item(over)}\n`, what: `item with ${Object.keys(over)[0]}` })),
    fc.constantFrom(
      { body: `${item({})}\n`, what: 'no header' },
      { body: `\n\n${item({})}\n`, what: 'no header, blank lines first' },
      { body: '', what: 'empty' },
      { body: '\n \n', what: 'blank lines only' },
      { body: `${header}\n${header}\n${item({})}`, what: 'two headers' },
      { body: `${header}\nnot json\n`, what: 'a non-JSON line' },
      { body: `${header}\n{"type":"item",\n`, what: 'a cut line' },
      { body: `${header}\n[]\n`, what: 'an array line' },
      { body: `${header}\n${toJson({ ...HEADER, format: 2 })}`, what: 'format 2' },
      { body: `${header.replace('{', '{"__proto__":1,')}\n${item({})}`, what: '__proto__ in the header' },
      { body: `${header}\n${'['.repeat(5_000)}${']'.repeat(5_000)}\n`, what: 'a deep line' },
      {
        body: `${header}\n${toJson({ type: 'history', namespace: ns, key: 'imported', kind: 'memory', op: 'insert', version: 1, before: null, after: {}, actor: 'a', threadId: null, at: '2026-01-02T03:04:05Z' })}\n`,
        what: 'history before its item',
      },
      {
        body: `${header}\n${item({ namespace: ['other-tenant', 'x'] })}\n${item({ value: 'bad' })}`,
        what: 'bad last line',
      },
    ),
    badBodies.map((body) => ({ body, what: 'a bad body' })),
  );
  return fc.tuple(files, fc.nat(19), contentType).map(([f, n, type]) => {
    if (n === 0) {
      overImport ??= `${header}\n${'x'.repeat(64 * 1024 * 1024)}`;
      return { ...base(), body: overImport, what: 'import: over 64 MiB' };
    }
    return {
      ...base(),
      // Mostly NDJSON; other types (JSON among them) are a 415.
      headers: { 'content-type': n < 15 ? 'application/x-ndjson' : type },
      body: f.body,
      what: `import: ${f.what}`,
    };
  });
  function base(): FuzzRequest {
    return {
      method: 'POST',
      path: '/v1/import',
      headers: { 'content-type': 'application/x-ndjson' },
      writes: true,
      what: 'import',
    };
  }
}

/** MCP's requests without a live session: bad JSON-RPC, bad session headers, unknown sessions. */
function mcpRequest(): fc.Arbitrary<FuzzRequest> {
  const initialize = {
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'fuzz', version: '1' } },
  };
  const accept = { accept: 'application/json, text/event-stream' };
  const bodies = fc.oneof(
    fc.constantFrom<unknown>(
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '1.0', id: 1, method: 'initialize' },
      { ...initialize, jsonrpc: undefined },
      { ...initialize, params: null },
      { ...initialize, params: { ...initialize.params, protocolVersion: 1 } },
      [initialize, initialize],
      [],
      { id: 1 },
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'manage_memory', arguments: {} } },
    ),
    unstorable.map((method) => ({ jsonrpc: '2.0', id: 1, method })),
  );
  const post = fc.tuple(bodies, fc.nat(3)).map(([body, n]): FuzzRequest => ({
    method: 'POST' as const,
    path: '/mcp',
    headers: { 'content-type': 'application/json', ...accept, ...(n === 0 ? { 'mcp-session-id': 'nope' } : {}) },
    body: toJson(body),
    writes: false,
    what: 'mcp: bad JSON-RPC',
  }));
  // A valid initialize whose session headers are bad: a 400 naming them.
  const badHeaders = fc
    .constantFrom<Record<string, string>>(
      { 'x-engram-context': 'not json' },
      { 'x-engram-context': '[]' },
      { 'x-engram-context': '{"userId":""}' },
      { 'x-engram-context': '{"__proto__":{"a":1}}' },
      { 'x-engram-context': `{"userId":"${'x'.repeat(300)}"}` },
      { 'x-engram-context': '{"userId":"a\\u0000"}' },
      { 'x-engram-context': '{"userId":"\\ud800"}' },
      { 'x-engram-context': '{"userId":"u1"}', 'x-engram-thread': '%00' },
      { 'x-engram-context': '{"userId":"u1"}', 'x-engram-thread': '_bad' },
      { 'x-engram-context': '{"userId":"u1"}', 'x-engram-thread': 't'.repeat(300) },
    )
    .map((headers) => ({
      method: 'POST' as const,
      path: '/mcp',
      headers: { 'content-type': 'application/json', ...accept, ...headers },
      body: toJson(initialize),
      writes: false,
      what: `mcp: session headers ${JSON.stringify(headers).slice(0, 80)}`,
    }));
  const bad = fc.tuple(badBodies, contentType).map(([body, type]) => ({
    method: 'POST' as const,
    path: '/mcp',
    headers: { 'content-type': type, ...accept },
    body,
    writes: false,
    what: 'mcp: bad body',
  }));
  const other = fc.constantFrom<FuzzRequest['method']>('GET', 'HEAD', 'DELETE').chain((method) =>
    fc.constantFrom('nope', '', '%00', '\u00e9').map((id): FuzzRequest => ({
      method,
      path: '/mcp',
      headers: method === 'DELETE' ? { 'mcp-session-id': id } : {},
      writes: false,
      what: `mcp: ${method} session ${JSON.stringify(id)}`,
    })),
  );
  return fc.oneof(post, badHeaders, bad, other);
}

/**
 * Routes that read nothing of a tenant's and write nothing: no generator of their own is
 * needed (the coverage check exempts them), but they still get hostile query strings, paths
 * and methods, which must not answer 5xx.
 */
export const READ_ONLY_STATIC = [
  // Liveness, readiness and metrics: operations' probes.
  'GET /healthz',
  'GET /readyz',
  'GET /metrics',
  // The OpenAPI document and Swagger UI's static files.
  'GET /openapi.json',
  'GET /docs',
  'GET /docs/',
  'GET /docs/*',
  'GET /docs/json',
  'GET /docs/yaml',
  'GET /docs/static/index.html',
  'GET /docs/static/swagger-initializer.js',
];

function staticRequest(): fc.Arbitrary<FuzzRequest> {
  const paths = fc.constantFrom(
    ...READ_ONLY_STATIC.map((r) => r.split(' ')[1] as string).map((p) => p.replace('*', 'x.js')),
    '/docs/%00',
    '/docs/..%2F..%2Fpackage.json',
    '/docs/static/%ED%A0%80',
    `/docs/${'a'.repeat(3_000)}`,
  );
  return fc
    .tuple(paths, queryValue, fc.constantFrom<FuzzRequest['method']>('GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE'))
    .map(([path, q, method]): FuzzRequest => ({
      method,
      path: `${path}?x=${q}`,
      headers: method === 'GET' || method === 'HEAD' ? {} : { 'content-type': 'application/json' },
      body: method === 'GET' || method === 'HEAD' ? undefined : '{',
      writes: false,
      what: `static ${method} ${path.slice(0, 60)}`,
    }));
}

/** Context values in `?context=`: not JSON, not an object, or a context no kind takes. */
const contextQuery = fc
  .oneof(
    fc.constantFrom('{', '[]', 'null', '1', '{"userId":""}', '{"__proto__":{}}', '{"userId":"a\\u0000"}'),
    fc.constantFrom('{"userId":"\\ud800"}', `{"userId":"${'x'.repeat(300)}"}`, '{"tenant":"globex","userId":"u1"}'),
  )
  .map(encodeURIComponent);

export function lifecycleRouteFuzz(tenant: string): RouteFuzz[] {
  const tpl = templates(tenant);
  const exportQuery = fc.oneof(
    queryRequest('/v1/export', ['namespace', 'context', 'history'], `namespace=${tenant}&namespace=fuzz`, 'export'),
    contextQuery.map((context): FuzzRequest => ({
      method: 'GET',
      path: `/v1/export?context=${context}`,
      headers: {},
      writes: false,
      what: `export: context ${decodeURIComponent(context).slice(0, 60)}`,
    })),
  );
  return [
    {
      routes: ['POST /v1/store/items/revert'],
      arbitrary: bodyRequest(tpl.revertItem as Template, 'revertItem'),
      weight: 2,
    },
    { routes: ['POST /v1/revert'], arbitrary: bodyRequest(tpl.revert as Template, 'revert'), weight: 2 },
    { routes: ['POST /v1/erase'], arbitrary: bodyRequest(tpl.erase as Template, 'erase'), weight: 2 },
    { routes: ['POST /v1/tools/apply'], arbitrary: bodyRequest(tpl.tools as Template, 'tools'), weight: 2 },
    { routes: ['GET /v1/export'], arbitrary: withHead(exportQuery), weight: 1 },
    { routes: ['POST /v1/import'], arbitrary: importRequest(tenant), weight: 2 },
    {
      routes: ['GET /v1/kinds'],
      arbitrary: withHead(queryRequest('/v1/kinds', ['kind', 'name'], '', 'kinds')),
      weight: 1,
    },
    { routes: ['POST /mcp', 'GET /mcp', 'DELETE /mcp'], arbitrary: mcpRequest(), weight: 2 },
    // Exempt from coverage (READ_ONLY_STATIC), sent hostile requests all the same.
    { routes: [], arbitrary: staticRequest(), weight: 1 },
  ];
}
