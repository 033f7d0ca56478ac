import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';
import {
  HOSTILE_API_KEYS,
  HOSTILE_KEYS,
  nestedJson,
  send,
  tenantKind,
  written,
  type Answer,
} from './helpers/hostile.js';

/**
 * Issue 15, one class at a time: input that used to reach Postgres, overflow the stack or be
 * misread now gets a 4xx naming the field, and nothing is written.
 */
describe('hostile input over HTTP (no API keys)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'] });
    // An item whose key is what a lone surrogate used to be replaced with.
    const seeded = await put({ namespace: ['h', 'u'], key: '\ufffd-x', value: { content: 'seeded' } });
    expect(seeded.status).toBe(200);
  });
  afterAll(async () => h?.stop());

  const put = (body: unknown) => send(h, 'PUT', '/v1/store/items', JSON.stringify(body));
  const search = (body: unknown) => send(h, 'POST', '/v1/store/items/search', JSON.stringify(body));
  const batch = (body: unknown) => send(h, 'POST', '/v1/store/batch', JSON.stringify(body));

  /** Each request is a 400 whose message matches its pattern, and the store is as it was. */
  async function refused(cases: [() => Promise<{ status: number; body: Record<string, any> }>, RegExp][]) {
    const before = await written(h);
    for (const [request, message] of cases) {
      const answer = await request();
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.body.error).toMatch(message);
    }
    expect(await written(h)).toEqual(before);
  }

  it('NUL in a filter value, key or operand, in actor and in query is a 400 naming it', async () => {
    await refused([
      [() => search({ namespacePrefix: ['h'], filter: { status: 'a\u0000b' } }), /NUL.*filter/s],
      [() => search({ namespacePrefix: ['h'], filter: { 'st\u0000atus': 1 } }), /NUL.*filter/s],
      [() => search({ namespacePrefix: ['h'], filter: { status: { $in: ['ok', '\u0000'] } } }), /NUL.*filter/s],
      [() => search({ namespacePrefix: ['h'], filter: { status: { $gt: '\u0000' } } }), /NUL.*filter/s],
      [() => put({ namespace: ['h', 'u'], key: 'k', value: { a: 1 }, actor: 'me\u0000' }), /NUL.*actor/s],
      [
        () => send(h, 'DELETE', '/v1/store/items', JSON.stringify({ namespace: ['h'], key: 'k', actor: '\u0000' })),
        /NUL.*actor/s,
      ],
      [() => search({ namespacePrefix: ['h'], query: 'tea\u0000' }), /NUL.*query/s],
      [() => send(h, 'GET', '/v1/memories/search?namespace=h&query=tea%00'), /NUL.*query/s],
    ]);
  });

  it('lone surrogates in labels, keys, values, filters, queries and context are a 400, never another key', async () => {
    await refused([
      [() => put({ namespace: ['h', '\ud800'], key: 'k', value: { a: 1 } }), /surrogate.*namespace/s],
      [() => put({ namespace: ['h', 'u'], key: '\ud800-x', value: { a: 1 } }), /surrogate.*key/s],
      [() => put({ namespace: ['h', 'u'], key: 'k', value: { text: 'a\udc00b' } }), /surrogate.*value/s],
      [() => put({ namespace: ['h', 'u'], key: 'k', value: { 'a\ud800': 1 } }), /surrogate.*value/s],
      [() => search({ namespacePrefix: ['h'], filter: { text: '\ud800' } }), /surrogate.*filter/s],
      [() => search({ namespacePrefix: ['h', '\udfff'] }), /surrogate.*namespacePrefix/s],
      [() => search({ namespacePrefix: ['h'], query: '\ud800' }), /surrogate.*query/s],
      [() => batch({ ops: [{ op: 'delete', namespace: ['h', 'u'], key: '\ud800-x' }] }), /surrogate.*key/s],
      [() => batch({ ops: [{ op: 'get', namespace: ['h', 'u'], key: '\ud800-x' }] }), /surrogate.*key/s],
      [
        () =>
          send(
            h,
            'POST',
            '/v1/threads/t1/turns',
            JSON.stringify({ context: { userId: '\ud800' }, messages: [{ role: 'user', content: 'hi' }] }),
          ),
        /surrogate.*userId/s,
      ],
    ]);
    const seeded = await send(
      h,
      'GET',
      `/v1/store/items?namespace=h&namespace=u&key=${encodeURIComponent('\ufffd-x')}`,
    );
    expect(seeded.body.item.value).toEqual({ content: 'seeded' });
  });

  it('a query-string escape that is malformed or decodes to no UTF-8 text is a 400, never literal text', async () => {
    // `%FF` was kept as the three characters "%FF": it named the item `%25FF` names.
    expect((await put({ namespace: ['rv', '%FF'], key: 'k%FF', value: { content: 'percent' } })).status).toBe(200);
    expect((await put({ namespace: ['rv', 'é'], key: 'café', value: { content: 'accent' } })).status).toBe(200);
    const item = (query: string) => send(h, 'GET', `/v1/store/items?${query}`);
    expect((await item('namespace=rv&namespace=%25FF&key=k%25FF')).body.item?.value).toEqual({ content: 'percent' });
    expect((await item('namespace=rv&namespace=%C3%A9&key=caf%C3%A9')).body.item?.value).toEqual({ content: 'accent' });
    const undecodable = /^the query string is not valid: a percent-escape in ".+" decodes to no UTF-8 text/;
    const malformed = /^the query string is not valid: a % in ".+" starts no percent-escape/;
    await refused([
      [() => item('namespace=rv&namespace=%FF&key=k%FF'), undecodable],
      [() => item('namespace=rv&namespace=%25FF&key=k%ZZ'), malformed],
      [() => send(h, 'GET', '/v1/store/items/history?namespace=rv&namespace=%25FF&key=k%'), malformed],
      // The first byte of é without its second.
      [() => send(h, 'GET', '/v1/store/items/history?namespace=rv&namespace=%C3&key=caf%C3'), undecodable],
      [() => send(h, 'GET', '/v1/memories/search?namespace=memories&namespace=u5&query=%ED%A0%80'), undecodable],
      [() => send(h, 'GET', '/v1/export?context=%7B%22userId%22%3A%22%ED%B0%80%22%7D'), undecodable],
      // In a name too, not only in a value.
      [() => send(h, 'GET', '/v1/export?namespace=rv&%FF=1'), undecodable],
      [() => send(h, 'GET', '/admin/queues/api/queues?activeQueue=%FF'), undecodable],
    ]);
    // The memory browser reads the raw query (URLSearchParams: `%FF` became U+FFFD); its page says it.
    const page = await send(h, 'GET', '/admin/memories/item?ns=rv&ns=%FF&key=k%FF');
    expect(page.status).toBe(400);
    expect(page.body.raw).toMatch(/the query string is not valid: a percent-escape in .+ decodes to no UTF-8 text/);
  });

  it('deep nesting is a 400 naming the depth bound, in values, filters and whole bodies', async () => {
    const ns = JSON.stringify(['h', 'u']);
    await refused([
      [
        () => send(h, 'PUT', '/v1/store/items', `{"namespace":${ns},"key":"k","value":{"a":${nestedJson(2_000)}}}`),
        /deeper than/,
      ],
      [
        () => send(h, 'PUT', '/v1/store/items', `{"namespace":${ns},"key":"k","value":{"a":${nestedJson(70)}}}`),
        /deeper than 64.*value/s,
      ],
      [
        () =>
          send(
            h,
            'POST',
            '/v1/store/items/search',
            `{"namespacePrefix":["h"],"filter":{"a":{"$eq":${nestedJson(2_000)}}}}`,
          ),
        /deeper than/,
      ],
      [
        () => send(h, 'POST', '/v1/store/items/search', `{"namespacePrefix":["h"],"filter":{"a":${nestedJson(70)}}}`),
        /deeper than 64.*filter/s,
      ],
      [
        () => send(h, 'PUT', '/v1/store/items', `{"namespace":${nestedJson(100_000, '"h"')},"key":"k","value":{}}`),
        /deeper than/,
      ],
      [() => send(h, 'POST', '/v1/store/batch', `{"ops":${nestedJson(5_000)}}`), /deeper than/],
    ]);
  });

  it('a `__proto__` key is refused by name, not called invalid JSON; other keys named like builtins are data', async () => {
    await refused([
      [
        () => send(h, 'PUT', '/v1/store/items', '{"namespace":["h","u"],"key":"k","value":{"__proto__":{"x":1}}}'),
        /__proto__/,
      ],
      [
        () => send(h, 'POST', '/v1/store/items/search', '{"namespacePrefix":["h"],"filter":{"__proto__":1}}'),
        /__proto__/,
      ],
      [() => send(h, 'POST', '/v1/store/items/search', '{"__proto__":{},"namespacePrefix":["h"]}'), /__proto__/],
    ]);
    const proto = await put({ namespace: ['h', 'u'], key: 'k', value: {} }).then(() =>
      send(h, 'PUT', '/v1/store/items', '{"namespace":["h","u"],"key":"k","value":{"__proto__":1}}'),
    );
    expect(proto.body.error).not.toMatch(/not valid JSON/);
    const builtins = await put({
      namespace: ['h', 'u'],
      key: 'builtins',
      value: { constructor: { prototype: { x: 1 } }, toString: 'a', hasOwnProperty: 2 },
    });
    expect(builtins.status).toBe(200);
    expect(builtins.body.item.value).toEqual({
      constructor: { prototype: { x: 1 } },
      toString: 'a',
      hasOwnProperty: 2,
    });
  });

  it('a time Postgres cannot store is a 400 naming it, in puts, batches, imports and turns', async () => {
    const year0 = '0000-01-01T00:00:00Z';
    const farOffset = '2020-01-01T00:00:00+23:59';
    // Written in years 9999 and 0001, but in years 10000 and 0 in UTC: stored, they could be
    // neither answered nor imported back.
    const year10k = '9999-12-31T23:59:59-15:59';
    const year0ByOffset = '0001-01-01T00:00:00+15:59';
    const bound = /must be a time in the years 0001 to 9999 in UTC, with an offset within ±15:59/;
    const item = (createdAt: string) => ({
      type: 'item',
      namespace: ['h', 'imported'],
      key: 'k',
      kind: 'memory',
      value: { content: 'x' },
      version: 1,
      createdAt,
      updatedAt: '2020-01-01T00:00:00Z',
      expiresAt: null,
      ttlMs: null,
      validFrom: '2020-01-01T00:00:00Z',
      invalidAt: null,
      fields: [],
    });
    const header = { type: 'export', format: 1, exportedAt: '2020-01-01T00:00:00Z', scope: {} };
    const importLines = (createdAt: string) =>
      send(h, 'POST', '/v1/import', [header, item(createdAt)].map((l) => JSON.stringify(l)).join('\n'), {
        'content-type': 'application/x-ndjson',
      });
    await refused([
      [
        () => put({ namespace: ['h', 'u'], key: 'k', value: { a: 1 }, validFrom: year0 }),
        new RegExp(`${bound.source}[\\s\\S]*validFrom`),
      ],
      [() => put({ namespace: ['h', 'u'], key: 'k', value: { a: 1 }, validFrom: farOffset }), bound],
      [() => put({ namespace: ['h', 'u'], key: 'k', value: { a: 1 }, validFrom: year10k }), bound],
      [() => put({ namespace: ['h', 'u'], key: 'k', value: { a: 1 }, validFrom: year0ByOffset }), bound],
      [
        () => batch({ ops: [{ op: 'put', namespace: ['h', 'u'], key: 'k', value: { a: 1 }, validFrom: farOffset }] }),
        bound,
      ],
      [() => importLines(year0), /createdAt/],
      [() => importLines(farOffset), /createdAt/],
      [() => importLines(year10k), /createdAt/],
      ...[year0, year10k].map(
        (createdAt) =>
          [
            () =>
              send(
                h,
                'POST',
                '/v1/threads/t-time/turns',
                JSON.stringify({ context: { userId: 'u' }, messages: [{ role: 'user', content: 'hi', createdAt }] }),
              ),
            new RegExp(`${bound.source}[\\s\\S]*createdAt`),
          ] as [() => Promise<Answer>, RegExp],
      ),
    ]);
    expect(await h.runtime.buffer.read('t-time', null, 10, 0)).toMatchObject({ pending: [] });
    // A time that is no ISO text is named by its format, without the 400-character regex zod tried.
    const notATime = await put({ namespace: ['h', 'u'], key: 'k', value: { a: 1 }, validFrom: 'yesterday' });
    expect(notATime.status).toBe(400);
    expect(notATime.body.details).toEqual([
      expect.objectContaining({ code: 'invalid_format', format: 'datetime', path: ['validFrom'] }),
    ]);
    expect(JSON.stringify(notATime.body.details)).not.toContain('pattern');
    // Times at the edges that Postgres stores are taken.
    const edge = await put({
      namespace: ['h', 'u'],
      key: 'edge',
      value: { a: 1 },
      validFrom: '0001-01-01T00:00:00-15:59',
    });
    expect(edge.status, JSON.stringify(edge.body)).toBe(200);
    const last = await put({ namespace: ['h', 'u'], key: 'last', value: { a: 1 }, validFrom: '9999-12-31T23:59:59Z' });
    expect(last.status, JSON.stringify(last.body)).toBe(200);
    // And read back: the answer's times are ISO text again.
    const read = await send(h, 'GET', '/v1/store/items?namespace=h&namespace=u&key=last');
    expect(read.status, JSON.stringify(read.body)).toBe(200);
    expect(read.body).toMatchObject({ item: { validFrom: '9999-12-31T23:59:59.000Z' } });
  });

  it('a body that is not UTF-8 is a 400, a charset or encoding that is not is a 415, never a replaced key', async () => {
    const raw = async (bytes: Buffer, headers: Record<string, string> = {}) => {
      const res = await fetch(`${h.url}/v1/store/items`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...headers },
        body: bytes,
      });
      return { status: res.status, body: (await res.json()) as { error: string } };
    };
    const before = await written(h);
    const utf8 = (json: string) => Buffer.from(json, 'utf8');
    // Two different keys that U+FFFD replacement made one item.
    for (const bad of [0xff, 0xfe]) {
      const bytes = Buffer.concat([
        utf8('{"namespace":["h","u"],"key":"k'),
        Buffer.from([bad]),
        utf8('","value":{"a":1}}'),
      ]);
      expect(await raw(bytes)).toEqual({ status: 400, body: { error: 'the body is not valid UTF-8' } });
    }
    const body = utf8(JSON.stringify({ namespace: ['h', 'u'], key: 'k-é', value: { a: 1 } }));
    for (const type of ['application/json; charset=latin1', 'application/json;charset="utf-16"'])
      expect(await raw(body, { 'content-type': type })).toEqual({
        status: 415,
        body: {
          error: expect.stringMatching(/^the body must be UTF-8 \(charset=utf-8, or no charset\), not charset=/),
        },
      });
    expect(await raw(body, { 'content-encoding': 'gzip' })).toEqual({
      status: 415,
      body: { error: 'the body must be sent uncompressed, not with content-encoding: gzip' },
    });
    expect(await written(h)).toEqual(before);
    for (const type of ['application/json; charset=UTF-8', 'application/json; charset=utf8'])
      expect((await raw(body, { 'content-type': type })).status).toBe(200);
  });

  it('a request that gives neither or both of two choices is told which to give', async () => {
    const erase = (body: unknown) => send(h, 'POST', '/v1/erase', JSON.stringify(body));
    const recall = (body: unknown) => send(h, 'POST', '/v1/recall', JSON.stringify(body));
    await refused([
      [
        () => erase({}),
        /^invalid request body: ✖ give `context` \(such as \{"userId":"u1"\}\) or `namespacePrefix` \(labels\): what to erase$/,
      ],
      [() => erase({ context: { userId: 'u' }, namespacePrefix: ['h'] }), /not both: one scope a call/],
      [() => erase({ context: 5 }), /expected object, received number \(at context\)/],
      [() => recall({ context: { userId: 'u' } }), /give `query` \(the text to recall for\) or `messages`/],
      [() => recall({ context: { userId: 'u' }, query: 'x', messages: [{ role: 'user', content: 'x' }] }), /not both/],
      [
        () =>
          recall({ context: { userId: 'u' }, query: 'x', mode: 'vector', recency: { halfLifeMs: 1000, weight: 0.5 } }),
        /recency weighs a hybrid recall only[\s\S]*at recency/,
      ],
    ]);
  });

  it('an operator where a filter field goes is a 400, never a field that matches nothing', async () => {
    await refused([
      [
        () => search({ namespacePrefix: ['h'], filter: { $and: [{ a: 1 }, { b: 2 }] } }),
        /\$and is not a field[\s\S]*no \$and or \$or/,
      ],
      [() => search({ namespacePrefix: ['h'], filter: { $or: [{ a: 1 }] } }), /\$or is not a field/],
    ]);
  });

  it('two messages of one call under one id are a 400, not one of them dropped as a re-send', async () => {
    const answer = await send(
      h,
      'POST',
      '/v1/threads/t-ids/turns',
      JSON.stringify({
        context: { userId: 'u' },
        messages: [
          { id: 'm1', role: 'user', content: 'I like tea' },
          { id: 'm1', role: 'user', content: 'I like coffee' },
        ],
      }),
    );
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatch(
      /repeats the id of message 0: each message of a call needs its own id\n {2}→ at messages\[1\]\.id/,
    );
    expect(await h.runtime.buffer.read('t-ids', null, 10, 0)).toMatchObject({ pending: [] });
  });

  it('a path id far over its bound is a short 400 naming the bound, not the URL echoed whole', async () => {
    const answer = await send(h, 'POST', `/v1/threads/${'a'.repeat(5_000)}/turns`, JSON.stringify({}));
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatch(
      /^a part of the URL \(an id or key in its path\) is over 256 characters: ids run to 128 /,
    );
    expect(answer.body.error.length).toBeLessThan(400);
  });

  it('a kind named `constructor` is a kind: put, batch, import and revert', async () => {
    // `kindIndexFields[kind]` found Object's constructor: a 500, `fields is not iterable`. The
    // only name of Object.prototype a kind name (lower case, a letter first) can spell.
    for (const kind of ['constructor']) {
      const one = await put({ namespace: ['b', kind], key: 'k', value: { a: 1 }, kind });
      expect(one.status, JSON.stringify(one.body)).toBe(200);
      expect(one.body.item.kind).toBe(kind);
      const many = await batch({ ops: [{ op: 'put', namespace: ['b', kind], key: 'k2', value: { a: 2 }, kind }] });
      expect(many.status, JSON.stringify(many.body)).toBe(200);
      expect(many.body.results[0].kind).toBe(kind);
    }
    const exported = await send(h, 'GET', '/v1/export?namespace=b&namespace=constructor&history=true');
    expect(exported.status).toBe(200);
    // Moved to another namespace, its header's scope with it (an item outside it is refused).
    const file = (exported.body.raw as string)
      .replaceAll('"namespace":["b","constructor"]', '"namespace":["b2"]')
      .replace('"namespacePrefix":["b","constructor"]', '"namespacePrefix":["b2"]');
    const imported = await send(h, 'POST', '/v1/import', file, { 'content-type': 'application/x-ndjson' });
    expect(imported.status, JSON.stringify(imported.body)).toBe(200);
    await put({ namespace: ['b2'], key: 'k', value: { a: 3 }, kind: 'constructor' });
    const reverted = await send(
      h,
      'POST',
      '/v1/store/items/revert',
      JSON.stringify({ namespace: ['b2'], key: 'k', version: 1 }),
    );
    expect(reverted.status, JSON.stringify(reverted.body)).toBe(200);
    expect(reverted.body.item).toMatchObject({ kind: 'constructor', value: { a: 1 } });
  });

  it('a missing namespace or body is told how to send it, not "invalid input"', async () => {
    await refused([
      [
        () => send(h, 'GET', '/v1/memories/search?query=tea'),
        /is required: give it as one `namespace` parameter per label, such as \?namespace=memories&namespace=u1\n {2}→ at namespace/,
      ],
      [() => send(h, 'GET', '/v1/store/items?key=k'), /one `namespace` parameter per label/],
      [
        () => send(h, 'DELETE', '/v1/store/items?namespace=h&key=k'),
        /^invalid delete request: nothing was sent; send its fields as a JSON object \(the request body\)$/,
      ],
    ]);
  });

  it('a number past its bound is told the real bound', async () => {
    for (const [request, bound] of [
      [() => search({ namespacePrefix: ['h'], limit: 1e308 }), /1 to 100.*limit/s],
      [() => search({ namespacePrefix: ['h'], limit: 2.5 }), /1 to 100.*limit/s],
      [() => send(h, 'POST', '/v1/store/namespaces', '{"limit":1e400}'), /limit/],
      [() => send(h, 'GET', '/v1/store/items/history?namespace=h&key=k&limit=1e308'), /1 to 1000.*limit/s],
      [
        () => send(h, 'GET', '/v1/store/items/history?namespace=h&key=k&offset=Infinity&limit=1'),
        /whole number from 0.*offset/s,
      ],
      [() => send(h, 'GET', '/v1/memories/search?namespace=h&query=tea&limit=1e308'), /1 to 100.*limit/s],
      [() => send(h, 'GET', '/v1/memories/search?namespace=h&query=tea&limit=0x10'), /limit/],
      [() => put({ namespace: ['h', 'u'], key: 'k', value: {}, ttl: 1e308 }), /3153600000000.*ttl/s],
    ] as const) {
      const answer = await request();
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.body.error).toMatch(bound);
      // The safe-integer bound only where it is the field's own (offsets).
      if (!/offset/.test(answer.body.error)) expect(answer.body.error).not.toMatch(/9007199254740991/);
    }
  });

  it('recall by turns that hold NUL or lone surrogates (buffered as sent) searches without them', async () => {
    for (const mode of ['text', 'hybrid', 'vector']) {
      const answer = await send(
        h,
        'POST',
        '/v1/recall',
        JSON.stringify({
          context: { userId: 'u1' },
          messages: [{ role: 'user', content: 'tea\u0000 with \ud800 milk' }],
          mode,
        }),
      );
      expect(answer.status, `${mode}: ${JSON.stringify(answer.body)}`).toBe(200);
    }
    // The caller's own query is refused instead: it is theirs to fix.
    const own = await send(h, 'POST', '/v1/recall', JSON.stringify({ context: { userId: 'u1' }, query: 'tea\u0000' }));
    expect(own.status).toBe(400);
    expect(own.body.error).toMatch(/NUL.*query/s);
  });

  it('a refusal lists the first 20 issues and counts the rest, however many the request has', async () => {
    const ops = Array.from({ length: 1_000 }, () => ({ op: 'put', namespace: [1] }));
    const res = await fetch(`${h.url}/v1/store/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ops }),
    });
    const text = await res.text();
    expect(res.status).toBe(400);
    const body = JSON.parse(text) as { error: string; details: unknown[] };
    expect(body.details).toHaveLength(20);
    expect(body.error).toMatch(/\(and \d+ more issues\)$/);
    // About the size of the request (29 KB), not 20 times it.
    expect(text.length).toBeLessThan(10_000);
  });

  it('batch refuses unknown top-level fields like every other route; a JSON null body is no empty body', async () => {
    await refused([
      [() => batch({ ops: [{ op: 'get', namespace: ['h'], key: 'k' }], opz: 1 }), /opz/],
      [() => batch({ ops: [{ op: 'put', namespace: ['h', 'u'], key: 'new', value: {} }], atomic: false }), /atomic/],
      [() => send(h, 'POST', '/v1/store/namespaces', 'null'), /expected object/],
      [() => send(h, 'POST', '/v1/store/batch', '[]'), /expected object/],
    ]);
  });
  it("Bull Board's routes refuse bad bodies, statuses and URLs with a 400 (or 404) whose error is text", async () => {
    const board = '/admin/queues/api/queues';
    const before = await written(h);
    for (const [method, path, body, status, message] of [
      // The JSON parser's refusal reached Bull Board's error handler without a status: a 500.
      ['PUT', `${board}/reflection/pause`, '{', 400, /not valid JSON/],
      ['PUT', `${board}/pause`, nestedJson(3_000), 400, /nest/],
      ['POST', `${board}/reflection/add`, '{"__proto__":{"a":1}}', 400, /__proto__/],
      // Any JSON was passed on: a body of [] added a job, an unknown state "cleaned" nothing with a 200.
      ['POST', `${board}/reflection/add`, '[]', 400, /request body.*expected object/s],
      ['PUT', `${board}/reflection/clean/nope`, undefined, 400, /invalid path.*queueStatus/s],
      ['PUT', `${board}/reflection/retry/%00`, undefined, 400, /invalid path.*queueStatus/s],
      // A URL that decodes to no UTF-8: Fastify's own three-field shape, `error: "Bad Request"`.
      ['POST', `${board}/%ED%A0%80/add`, '{}', 400, /URL is not valid/],
      // Its own check of a query value threw on NUL (500), its second decoding on a lone `%`.
      ['GET', `${board}?activeQueue=reflection&page=%00`, undefined, 400, /query string.*NUL.*page/s],
      // A tab that is none: Bull Board's own refusal named only the field, now the tabs are listed.
      [
        'GET',
        `${board}?activeQueue=reflection&status=nope`,
        undefined,
        400,
        /query string.*"latest".*"failed".*status/s,
      ],
      ['GET', `${board}?activeQueue=reflection&status=%00`, undefined, 400, /query string.*status/s],
      ['GET', `${board}?activeQueue=%25`, undefined, 400, /query string.*activeQueue/s],
      // Bull Board's own refusals were `{ error: { key } }`: now text.
      ['PUT', `${board}/%00/pause`, undefined, 404, /^queue not found$/],
      ['GET', `${board}/reflection/%00`, undefined, 404, /^job not found$/],
    ] as const) {
      const answer = await send(h, method, path, body, method === 'GET' ? {} : { origin: h.url });
      expect(answer.status, `${method} ${path} ${JSON.stringify(answer.body)}`).toBe(status);
      expect(answer.body.error).toMatch(message);
    }
    // Refusals whose message was only the status's name: said in words now.
    for (const [path, body, headers, status, message] of [
      [
        `${board}/reflection/pause`,
        'x',
        { 'content-type': 'text/plain', origin: h.url },
        415,
        /^the body must be JSON/,
      ],
      ['/admin/queues/static/x%00', undefined, {}, 400, /^the path names no file.*NUL/],
      ['/docs/static/x%00', undefined, {}, 400, /^the path names no file \(\/docs\/static\/x%00\).*NUL/],
    ] as const) {
      const answer = await send(h, body === undefined ? 'GET' : 'PUT', path, body, headers);
      expect(answer.status, `${path} ${JSON.stringify(answer.body)}`).toBe(status);
      expect(answer.body.error).toMatch(message);
    }
    expect(await written(h)).toEqual(before);
  });
});

describe('hostile input over HTTP (with API keys)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api'],
      env: { API_KEYS: HOSTILE_API_KEYS, ADMIN_PASSWORD: 'board-password' },
      runtime: { kinds: [tenantKind] },
    });
  });
  afterAll(async () => h?.stop());
  const auth = { authorization: `Bearer ${HOSTILE_KEYS.acme}` };

  it("refuses a Bull Board write that does not come from the board's own pages, and writes nothing", async () => {
    const admin = { authorization: `Basic ${Buffer.from('admin:board-password').toString('base64')}` };
    const add = '/admin/queues/api/queues/reflection/add';
    const before = await written(h);
    // A cross-site page's bodiless no-cors POST: the browser sends the cached password with it.
    for (const from of [
      {} as Record<string, string>,
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { referer: 'https://evil.example/x' },
    ]) {
      const answer = await send(h, 'POST', add, undefined, { ...admin, ...from });
      expect(answer.status, JSON.stringify(from)).toBe(403);
      expect(answer.body.error).toContain('must come from a page of this site: send an Origin header');
    }
    for (const path of ['pause', 'clean/failed', 'retry/failed']) {
      expect((await send(h, 'PUT', `/admin/queues/api/queues/reflection/${path}`, undefined, admin)).status, path).toBe(
        403,
      );
    }
    expect(await written(h)).toEqual(before);
    // Reads need no Origin; a write from the board's own origin goes on to its checks.
    expect((await send(h, 'GET', '/admin/queues/api/queues', undefined, admin)).status).toBe(200);
    expect((await send(h, 'POST', add, '[]', { ...admin, origin: h.url })).status).toBe(400);
    expect(await written(h)).toEqual(before);
  });

  it('a non-object body is refused as one, never taken as {}', async () => {
    const before = await written(h);
    for (const [method, path] of [
      ['POST', '/v1/store/namespaces'],
      ['POST', '/v1/store/items/search'],
      ['PUT', '/v1/store/items'],
      ['DELETE', '/v1/store/items'],
    ] as const) {
      for (const body of ['[]', '[1]', '"x"', '1', 'null']) {
        const answer = await send(h, method, path, body, auth);
        expect(answer.status, `${method} ${path} ${body}`).toBe(400);
        expect(answer.body.error).toMatch(/expected object/);
      }
    }
    expect(await written(h)).toEqual(before);
  });

  it('an actor of the wrong type or too long is a 400, not replaced by the tenant nor cut', async () => {
    for (const actor of [1, '', null, ['a'], { a: 1 }, 'x'.repeat(201)]) {
      const answer = await send(
        h,
        'PUT',
        '/v1/store/items',
        JSON.stringify({ namespace: ['acme'], key: 'k', value: {}, actor }),
        auth,
      );
      expect(answer.status, JSON.stringify(actor)).toBe(400);
      expect(answer.body.error).toMatch(/actor/);
    }
  });

  it('a deep or huge namespace outside the tenant is a 4xx whose message stays short', async () => {
    const deep = await send(
      h,
      'PUT',
      '/v1/store/items',
      `{"namespace":${nestedJson(2_000, '"x"')},"key":"k","value":{}}`,
      auth,
    );
    expect(deep.status).toBe(400);
    const wide = await send(
      h,
      'PUT',
      '/v1/store/items',
      JSON.stringify({ namespace: ['x'.repeat(1_000_000)], key: 'k', value: {} }),
      auth,
    );
    expect(wide.status).toBe(403);
    expect(wide.body.error.length).toBeLessThan(500);
  });
});
