import fc from 'fast-check';
import { nestedJson } from './hostile.js';

/**
 * Generated bad requests for every route (test/api-fuzz.test.ts). Each request that could write
 * (turns, put, delete, batch) carries at least one defect that the API must refuse whatever else
 * the request holds, so a run that wrote anything is a bug, not bad luck. Reads may come out
 * valid: they must still never answer 5xx.
 */
export interface FuzzRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  headers: Record<string, string>;
  /** Raw body text: it may be any text, JSON or not. */
  body?: string;
  /** Whether a 2xx would mean something was written. */
  writes: boolean;
  /** What was done to it, for the failure message. */
  what: string;
}

/**
 * Generated requests for some of the served routes, each named `METHOD /pattern` as Fastify
 * lists it (served-routes.ts): the fuzz test fails for a served route that none names.
 */
export interface RouteFuzz {
  routes: string[];
  arbitrary: fc.Arbitrary<FuzzRequest>;
  weight: number;
}

/** A GET route's requests, a tenth of them sent as HEAD (a 405: only the probes answer HEAD). */
export function withHead(arbitrary: fc.Arbitrary<FuzzRequest>): fc.Arbitrary<FuzzRequest> {
  return fc
    .tuple(arbitrary, fc.nat(9))
    .map(([r, n]) => (n === 0 && r.method === 'GET' ? { ...r, method: 'HEAD' as const, what: `HEAD ${r.what}` } : r));
}

/** JSON text spliced in as it is: numbers JSON.stringify cannot write, nesting, `__proto__`. */
export class Raw {
  constructor(readonly text: string) {}
}
const MARK = '__fuzz_raw__';
/** JSON text of `value`, with each Raw inside written as its own text. */
export function toJson(value: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(value, (_key, v: unknown) => (v instanceof Raw ? `${MARK}${raws.push(v.text) - 1}` : v));
  return text.replace(new RegExp(`"${MARK}(\\d+)"`, 'g'), (_m, i: string) => raws[Number(i)] as string);
}

// Values made once: big ones are shared, not regenerated per request.
export const HUGE_STRING = 'x'.repeat(300_000);
/** Over the 4 MiB body limit. */
export const OVER_LIMIT = `{"a":"${'x'.repeat(4.5 * 1024 * 1024)}"}`;
const HUGE_ARRAY = new Raw(`[${'1,'.repeat(99_999)}1]`);
export const deep = (levels: number) => new Raw(nestedJson(levels));
export const PROTO = new Raw('{"__proto__":{"polluted":true}}');
export const INFINITE = [new Raw('1e400'), new Raw('-1e400')];

/** A short printable string with one character Postgres cannot store. */
export const unstorable = fc
  .tuple(fc.string({ maxLength: 6 }), fc.constantFrom('\u0000', '\ud800', '\udbff', '\udc00', '\udfff'), fc.string())
  .map(([a, bad, b]) => a + bad + b);
/** Never a string: wrong types, nesting, `__proto__`, numbers JSON cannot hold. */
export const notString = fc.constantFrom<unknown>(
  null,
  true,
  0,
  -1,
  1e308,
  [],
  {},
  [['a']],
  { a: 'b' },
  deep(70),
  deep(3_000),
  PROTO,
  HUGE_ARRAY,
  ...INFINITE,
);
/** Text no field of `max` characters (and at least one) takes. */
export const badText = (max: number, min = 1) =>
  fc.oneof(
    unstorable,
    notString,
    fc.constant('x'.repeat(max + 1)),
    fc.constant(HUGE_STRING),
    ...(min ? [fc.constant('')] : []),
  );
/** A number no integer field of that range takes. */
export const badInt = (min: number, max: number, nullable = false) =>
  fc.oneof(
    fc.constantFrom<unknown>(
      min - 1,
      max + 1,
      2.5,
      -0.5,
      1e308,
      -1e308,
      new Raw('9007199254740993'),
      '5',
      true,
      [],
      {},
      ...INFINITE,
    ),
    ...(nullable ? [] : [fc.constant(null)]),
    fc.double({ noInteger: true, min, max }).filter(Number.isFinite),
    max < 2 ** 31 - 1 ? fc.integer({ min: max + 1 }) : fc.constant(max * 2),
  );
export const notBool = fc.constantFrom<unknown>('true', 1, 0, null, [], {}, 'yes');
/** A namespace no route takes: wrong shape, too many labels, or a bad label (first or later). */
export const badNamespace = (ns: string[]) =>
  fc.oneof(
    fc.constantFrom<unknown>([], 'acme', 1, null, {}, Array(17).fill('a'), deep(80), [deep(3_000)], [['acme']], PROTO),
    fc
      .tuple(fc.integer({ min: 0, max: ns.length - 1 }), badText(256))
      .map(([i, label]) => ns.map((l, j) => (i === j ? label : l))),
  );
/** A prefix no route takes (an empty prefix is a valid one: every namespace, or the tenant's). */
export const badPrefix = (ns: string[]) => badNamespace(ns).filter((v) => !(Array.isArray(v) && v.length === 0));
/** A stored value no put takes. */
export const badValue = fc.oneof(
  notString.filter((v) => !(v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Raw))),
  fc.constantFrom<unknown>(
    'text',
    ['a'],
    { a: deep(70) },
    { a: { b: PROTO } },
    { big: 'x'.repeat(1_000_001) },
    { n: INFINITE[0] },
  ),
  unstorable.map((s) => ({ content: s })),
  unstorable.map((s) => ({ [s]: 1 })),
);
const badFilter = fc.oneof(
  fc.constantFrom<unknown>(
    'a',
    1,
    [],
    PROTO,
    deep(70),
    { a: deep(70) },
    { $: 1 },
    { 'a[*]': 1 },
    { 'a..b': 1 },
    { '': 1 },
  ),
  fc.constantFrom<unknown>({ a: { $foo: 1 } }, { a: { $in: 1 } }, { a: { $gt: {} } }, { a: { $exists: 'yes' } }),
  fc.constant(Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`f${i}`, i]))),
  fc.constant({ a: { $in: Array.from({ length: 1_001 }, (_, i) => i) } }),
  fc.constant({ ['x'.repeat(513)]: 1 }),
  unstorable.map((s) => ({ a: s })),
  unstorable.map((s) => ({ [s]: 1 })),
  unstorable.map((s) => ({ a: { $in: ['ok', s] } })),
);
const badIndex = fc.constantFrom<unknown>([], true, 'content', [1], ['a..b'], ['a[x]'], Array(33).fill('a'), [
  deep(70),
]);
const badKind = fc.oneof(fc.constantFrom<unknown>('Bad-Kind', '1kind', '', 'k'.repeat(64), 1, null), unstorable);
const badMode = fc.constantFrom<unknown>('fast', 'VECTOR', 1, null, []);

/** A field to break: its name and the values that break it. */
export type Breaks = Record<string, fc.Arbitrary<unknown>>;

/** A route's valid request, and how each of its fields can be broken. */
export interface Template {
  method: FuzzRequest['method'];
  path: string;
  body: Record<string, unknown>;
  breaks: Breaks;
  writes: boolean;
}

/** The routes' templates in the namespaces of `tenant` (its first label), keys of the setup's items. */
export function templates(tenant: string): Record<string, Template> {
  const ns = [tenant, 'fuzz', 'u1'];
  const put = { namespace: ns, key: 'k1', value: { content: 'User likes tea', n: 1 }, actor: 'fuzz' };
  const putBreaks: Breaks = {
    namespace: badNamespace(ns),
    key: badText(1_024),
    value: badValue,
    index: badIndex,
    ttl: badInt(1, 100 * 365 * 24 * 3600_000, true),
    kind: badKind,
    ifVersion: badInt(0, Number.MAX_SAFE_INTEGER),
    actor: badText(200),
  };
  const search = { namespacePrefix: ns.slice(0, 2), query: 'tea', filter: { n: { $gte: 1 } }, limit: 5 };
  const searchBreaks: Breaks = {
    namespacePrefix: badPrefix(ns),
    query: badText(8_000),
    filter: badFilter,
    limit: badInt(1, 100),
    offset: badInt(0, 100_000),
    mode: badMode,
    exact: notBool,
    refreshTtl: notBool,
  };
  const turns = {
    context: { userId: 'u1' },
    messages: [{ id: 'm1', role: 'user', content: 'I like tea', createdAt: '2026-01-02T03:04:05Z' }],
    kinds: ['memory'],
    debounceMs: 1_000,
    policy: 'enqueue',
  };
  return {
    turns: {
      method: 'POST',
      path: '/v1/threads/t-fuzz/turns',
      body: turns,
      writes: true,
      breaks: {
        context: fc.oneof(
          fc.constantFrom<unknown>(null, [], 'u1', { '1bad': 'x' }, { userId: '' }, { userId: 'x'.repeat(257) }, PROTO),
          fc.constant(Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']))),
          unstorable.map((s) => ({ userId: s })),
          notString.map((v) => ({ userId: v })),
        ),
        messages: fc.oneof(
          fc.constantFrom<unknown>(
            [],
            'hi',
            null,
            [null],
            [{}],
            [{ role: 'bot', content: 'hi' }],
            [{ role: 'user', content: '' }],
          ),
          fc.constant(Array.from({ length: 101 }, () => ({ role: 'user', content: 'hi' }))),
          fc.constant([{ role: 'user', content: 'x'.repeat(32_001) }]),
          fc.constant([{ role: 'user', content: 'hi', extra: 1 }]),
          badText(128).map((id) => [{ id, role: 'user', content: 'hi' }]),
          fc
            .constantFrom('yesterday', '2026-13-45T00:00:00Z', 1)
            .map((createdAt) => [{ role: 'user', content: 'hi', createdAt }]),
          notString.map((content) => [{ role: 'user', content }]),
        ),
        kinds: fc.constantFrom<unknown>([], ['Bad'], 'memory', Array(33).fill('memory'), [1]),
        debounceMs: badInt(0, 24 * 3600_000),
        policy: fc.constantFrom<unknown>('later', 1, null),
      },
    },
    recall: {
      method: 'POST',
      path: '/v1/recall',
      body: { context: { userId: 'u1' }, query: 'tea', limit: 5, mode: 'hybrid' },
      writes: false,
      breaks: {
        context: fc.constantFrom<unknown>(null, [], { userId: '\u0000' }, { userId: '\ud800' }, {}, PROTO),
        query: badText(8_000),
        messages: fc.constantFrom<unknown>([], [{ role: 'user', content: 'tea\u0000\ud800' }], 'hi'),
        kinds: fc.constantFrom<unknown>([], ['nope'], [1]),
        limit: badInt(1, 100),
        tokenBudget: badInt(1, 200_000),
        mode: badMode,
        recency: fc.constantFrom<unknown>(
          { halfLifeMs: 0, weight: 2 },
          { halfLifeMs: 1e308, weight: 0.5 },
          'soon',
          null,
        ),
        refreshTtl: notBool,
      },
    },
    put: { method: 'PUT', path: '/v1/store/items', body: put, writes: true, breaks: putBreaks },
    delete: {
      method: 'DELETE',
      path: '/v1/store/items',
      body: { namespace: ns, key: 'k1', ifVersion: 1, actor: 'fuzz' },
      writes: true,
      breaks: {
        namespace: putBreaks.namespace as fc.Arbitrary<unknown>,
        key: putBreaks.key as fc.Arbitrary<unknown>,
        ifVersion: putBreaks.ifVersion as fc.Arbitrary<unknown>,
        actor: putBreaks.actor as fc.Arbitrary<unknown>,
      },
    },
    search: { method: 'POST', path: '/v1/store/items/search', body: search, writes: false, breaks: searchBreaks },
    namespaces: {
      method: 'POST',
      path: '/v1/store/namespaces',
      body: { prefix: [tenant], maxDepth: 2, limit: 10 },
      writes: false,
      breaks: {
        prefix: searchBreaks.namespacePrefix as fc.Arbitrary<unknown>,
        suffix: badPrefix(['u1']),
        maxDepth: badInt(1, 16),
        limit: badInt(1, 1_000),
        offset: badInt(0, Number.MAX_SAFE_INTEGER),
      },
    },
  };
}

/** Body-level defects: the body is refused whatever route it is sent to. */
export const badBodies = fc.oneof(
  fc.constantFrom('[]', '[1]', '"x"', '1', 'null', 'true', '', ' ', '{', '{"a":}', "{'a':1}", '{"a":NaN}', '{"a":1} x'),
  fc.constantFrom(
    '/* c */ {}',
    '\ufeff{',
    nestedJson(100_000),
    '{"__proto__":{"polluted":true}}',
    '\u0000',
    OVER_LIMIT,
  ),
  fc.string({ unit: 'binary', maxLength: 40 }).filter((s) => {
    try {
      const v: unknown = JSON.parse(s);
      return v === null || typeof v !== 'object' || Array.isArray(v);
    } catch {
      return true;
    }
  }),
);
/** Content types: the JSON spellings Fastify parses, and others it must answer 415. */
export const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'application/JSON',
  'application/json; charset=latin1',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'application/json-patch+json',
);
/** Thread ids the path must refuse: none is a valid id. */
const badThreadId = fc.oneof(
  fc.constantFrom('%00', '%ED%A0%80', '%FF', '_x', '-x', 'a%20b', 'a%2Fb', '%2E%2E', 't'.repeat(129), 't'.repeat(300)),
  fc.string({ minLength: 1, maxLength: 10 }).map((s) => `!${encodeURIComponent(s)}`),
);

/** A request to a body route: one of its fields broken (or more), an unknown field, or a bad body. */
export function bodyRequest(t: Template, name: string): fc.Arbitrary<FuzzRequest> {
  const fields = Object.keys(t.breaks);
  const broken = fc
    .subarray(fields, { minLength: 1, maxLength: Math.min(3, fields.length) })
    .chain((names) => fc.tuple(...names.map((n) => (t.breaks[n] as fc.Arbitrary<unknown>).map((v) => [n, v] as const))))
    .map((pairs) => ({
      body: toJson({ ...t.body, ...Object.fromEntries(pairs) }),
      what: `broke ${pairs.map((p) => p[0]).join(', ')}`,
    }));
  const unknown = fc
    .constantFrom('extra', 'constructor', 'toString', 'Namespace', 'namespace ', 'op', '\u0000', '\ud800')
    .map((key) => ({ body: toJson({ ...t.body, [key]: 1 }), what: `unknown field ${JSON.stringify(key)}` }));
  // Required fields of the writing routes (delete's template has none to spare: without
  // `ifVersion` it is a valid delete).
  const required = { turns: ['context', 'messages'], put: ['namespace', 'key', 'value'] }[name] ?? [];
  const missing = required.map((key) =>
    fc.constant(null).map(() => {
      const { [key]: _gone, ...rest } = t.body;
      return { body: toJson(rest), what: `without ${key}` };
    }),
  );
  const bad = badBodies.map((body) => ({ body, what: 'bad body' }));
  // A put valid in shape whose indexing is over a bound (fields, characters): a 413.
  const overWork =
    name === 'put'
      ? [
          fc
            .constantFrom(
              { value: { items: Array.from({ length: 20_000 }, (_, i) => `n${i}`) }, index: ['items[*]'] },
              {
                value: { a: Array.from({ length: 200 }, String), b: Array.from({ length: 200 }, String) },
                index: ['a[*]', 'b[*]'],
              },
              { value: { content: 'z'.repeat(40_000) } },
              { value: { content: 'z'.repeat(40_000) }, index: ['content'] },
            )
            .map((over) => ({ body: toJson({ ...t.body, ...over }), what: 'indexing over a bound' })),
        ]
      : [];
  const arms = [broken, broken, broken, unknown, bad, ...missing, ...overWork];
  return fc.tuple(fc.oneof(...arms), contentType, fc.nat(9)).map(([b, type, n]) => ({
    method: t.method,
    path: name === 'turns' && n === 0 ? t.path.replace('t-fuzz', '%ED%A0%80') : t.path,
    // Mostly JSON: the other types are each one defect among many.
    headers: { 'content-type': n < 7 ? 'application/json' : type },
    body: b.body,
    writes: t.writes,
    what: `${name}: ${b.what}`,
  }));
}

/** A batch refused whole: a broken op among valid ones, or a batch-level defect. */
function batchRequest(tpl: Record<string, Template>, tenant: string): fc.Arbitrary<FuzzRequest> {
  const ns = [tenant, 'fuzz', 'u1'];
  const valid = [
    { op: 'put', ...(tpl.put as Template).body, key: 'b1' },
    { op: 'get', namespace: ns, key: 'k1' },
    { op: 'search', ...(tpl.search as Template).body },
    { op: 'listNamespaces', prefix: [tenant] },
  ];
  const brokenOp = fc
    .constantFrom(['put', tpl.put], ['delete', tpl.delete], ['search', tpl.search], ['listNamespaces', tpl.namespaces])
    .chain(([op, t]) =>
      fc
        .constantFrom(...Object.keys((t as Template).breaks))
        .chain((field) =>
          ((t as Template).breaks[field] as fc.Arbitrary<unknown>).map((v) => ({ op, field, v, t: t as Template })),
        ),
    )
    .map(({ op, field, v, t }) => ({
      ops: [...valid.slice(0, 2), { op, ...t.body, [field]: v }],
      what: `batch: ${op} with ${field} broken`,
    }));
  const level = fc.constantFrom(
    { ops: [], what: 'batch: no ops' },
    { ops: 'put', what: 'batch: ops not a list' },
    { ops: [null], what: 'batch: null op' },
    { ops: [[]], what: 'batch: array op' },
    { ops: [{ op: 'upsert', namespace: ns, key: 'k' }], what: 'batch: unknown op' },
    { ops: [{ op: 'constructor', namespace: ns, key: 'k' }], what: 'batch: op "constructor"' },
    { ops: [valid[0], valid[0]], what: 'batch: one item written twice' },
    { ops: Array.from({ length: 1_001 }, () => valid[1]), what: 'batch: 1,001 ops' },
    {
      ops: [
        ...valid,
        {
          ...valid[0],
          key: 'b2',
          value: { items: Array.from({ length: 300 }, (_, i) => `n${i}`) },
          index: ['items[*]'],
        },
      ],
      what: 'batch: 300 fields in one put',
    },
    {
      ops: Array.from({ length: 9 }, (_, i) => ({
        ...valid[0],
        key: `m${i}`,
        value: { items: Array.from({ length: 256 }, (_, j) => `n${j}`) },
        index: ['items[*]'],
      })),
      what: 'batch: 2,304 texts',
    },
    { ops: [{ ...valid[0], value: { content: 'y'.repeat(40_000) } }], what: 'batch: a 40,000-character text' },
  );
  const extra = fc.constant({ ops: valid, extra: true, what: 'batch: unknown top-level field' });
  return fc
    .oneof(
      brokenOp,
      brokenOp,
      level,
      extra,
      badBodies.map((b) => ({ raw: b, what: 'batch: bad body' })),
    )
    .map((b) => {
      const { what, raw, ...body } = b as { what: string; raw?: string } & Record<string, unknown>;
      return {
        method: 'POST',
        path: '/v1/store/batch',
        headers: { 'content-type': 'application/json' },
        body: raw ?? toJson(body),
        writes: true,
        what,
      } satisfies FuzzRequest;
    });
}

/** Query-string values with defects: repeats, NUL, bad escapes, huge, unknown names. */
export const queryValue = fc.oneof(
  fc.constantFrom(
    '%00',
    'a%00b',
    '%ED%A0%80',
    '%FF%FE',
    '%ZZ',
    '%',
    '%E0%A4',
    'x'.repeat(9_000),
    '',
    '%20',
    'acme%2Fx',
  ),
  fc.constantFrom('1e308', '-1', '0x10', '%205', 'NaN', 'Infinity', '1.5', '99999999999999999999', 'true', 'yes'),
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
  fc
    .string({ unit: 'binary', maxLength: 8 })
    .map((s) => encodeURI((s as unknown as { toWellFormed(): string }).toWellFormed())),
);
export function queryRequest(path: string, names: string[], base: string, what: string): fc.Arbitrary<FuzzRequest> {
  const param = fc.tuple(fc.constantFrom(...names, '__proto__', 'constructor', 'namespace[]', 'extra'), queryValue);
  return fc.tuple(fc.array(param, { minLength: 1, maxLength: 4 }), fc.boolean()).map(([params, keepBase]) => {
    const q = params.map(([k, v]) => `${k}=${v}`).join('&');
    return {
      method: 'GET',
      path: `${path}?${keepBase ? `${base}&` : ''}${q}`,
      headers: {},
      writes: false,
      what: `${what}: ${q.slice(0, 80)}`,
    };
  });
}

/** The store's, turns' and recall's routes, weighted toward the writing ones. */
export function coreRouteFuzz(tenant: string): RouteFuzz[] {
  const tpl = templates(tenant);
  const ns = `namespace=${tenant}&namespace=fuzz&namespace=u1`;
  const thread = fc.tuple(badThreadId, contentType).map(([id, type]) => ({
    method: 'POST' as const,
    path: `/v1/threads/${id}/turns`,
    headers: { 'content-type': type },
    body: toJson((tpl.turns as Template).body),
    writes: true,
    what: `turns: thread id ${id.slice(0, 40)}`,
  }));
  const turns = 'POST /v1/threads/:threadId/turns';
  return [
    { routes: [turns], arbitrary: bodyRequest(tpl.turns as Template, 'turns'), weight: 3 },
    { routes: [turns], arbitrary: thread, weight: 1 },
    { routes: ['PUT /v1/store/items'], arbitrary: bodyRequest(tpl.put as Template, 'put'), weight: 4 },
    { routes: ['DELETE /v1/store/items'], arbitrary: bodyRequest(tpl.delete as Template, 'delete'), weight: 2 },
    {
      routes: ['POST /v1/store/items/search'],
      arbitrary: bodyRequest(tpl.search as Template, 'search'),
      weight: 2,
    },
    {
      routes: ['POST /v1/store/namespaces'],
      arbitrary: bodyRequest(tpl.namespaces as Template, 'namespaces'),
      weight: 1,
    },
    { routes: ['POST /v1/recall'], arbitrary: bodyRequest(tpl.recall as Template, 'recall'), weight: 1 },
    { routes: ['POST /v1/store/batch'], arbitrary: batchRequest(tpl, tenant), weight: 3 },
    {
      routes: ['GET /v1/store/items'],
      arbitrary: withHead(queryRequest('/v1/store/items', ['namespace', 'key', 'refreshTtl'], `${ns}&key=k1`, 'get')),
      weight: 1,
    },
    {
      routes: ['GET /v1/store/items/history'],
      arbitrary: withHead(
        queryRequest('/v1/store/items/history', ['namespace', 'key', 'limit', 'offset'], `${ns}&key=k1`, 'history'),
      ),
      weight: 1,
    },
    {
      routes: ['GET /v1/memories/search'],
      arbitrary: withHead(
        queryRequest(
          '/v1/memories/search',
          ['namespace', 'query', 'limit', 'offset', 'mode', 'refreshTtl'],
          `${ns}&query=tea`,
          'memories',
        ),
      ),
      weight: 1,
    },
  ];
}
