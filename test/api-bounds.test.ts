import { createServer, type AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tables } from '../src/store/sql.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { send, written } from './helpers/hostile.js';

/** Issue 15: the work one request may cause is bounded, and each bound is a 413 that names it. */
describe('bounded work per request', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'] });
  });
  afterAll(async () => h?.stop());

  const put = (body: unknown) => send(h, 'PUT', '/v1/store/items', JSON.stringify(body));
  const items = (n: number) => Array.from({ length: n }, (_, i) => `note ${i}`);
  const vectors = async (key: string) =>
    Number(
      (
        await h.runtime.db.query<{ n: string }>(
          `select count(*) as n from ${tables(h.runtime.store.schema).vectors} where key = $1`,
          [key],
        )
      ).rows[0]?.n,
    );

  /** Each request is refused with `status` and a message matching `message`; nothing is written or embedded. */
  async function refused(
    status: number,
    cases: [() => Promise<{ status: number; body: Record<string, any> }>, RegExp][],
  ) {
    const before = await written(h);
    const embedded = h.model.embeddingRequests;
    for (const [request, message] of cases) {
      const answer = await request();
      expect(answer.status, JSON.stringify(answer.body).slice(0, 500)).toBe(status);
      expect(answer.body.error).toMatch(message);
    }
    expect(h.model.embeddingRequests).toBe(embedded);
    expect(await written(h)).toEqual(before);
  }

  it('an index path over a huge array is a 413 naming the path and the bound, before any embedding', async () => {
    await refused(413, [
      [
        () => put({ namespace: ['b'], key: 'k', value: { items: items(20_000) }, index: ['items[*]'] }),
        /items\[\*\].*256/s,
      ],
      [
        () => put({ namespace: ['b'], key: 'k', value: { items: items(257) }, index: ['items[*]'] }),
        /items\[\*\].*256/s,
      ],
      [
        () => put({ namespace: ['b'], key: 'k', value: { a: items(200), b: items(200) }, index: ['a[*]', 'b[*]'] }),
        /256/,
      ],
    ]);
    expect((await send(h, 'GET', '/healthz')).status).toBe(200);
    // The bound itself is allowed, one vector per element.
    const ok = await put({ namespace: ['b'], key: 'max', value: { items: items(256) }, index: ['items[*]'] });
    expect(ok.status).toBe(200);
    expect(await vectors('max')).toBe(256);
  });

  it('texts per request, characters per text and per request are bounded', async () => {
    const op = (key: string, n: number) => ({
      op: 'put',
      namespace: ['b'],
      key,
      value: { items: items(n) },
      index: ['items[*]'],
    });
    await refused(413, [
      // 9 x 256 = 2,304 texts in one embedding request.
      [
        () =>
          send(
            h,
            'POST',
            '/v1/store/batch',
            JSON.stringify({ ops: Array.from({ length: 9 }, (_, i) => op(`k${i}`, 256)) }),
          ),
        /2048 texts/,
      ],
      [
        () => put({ namespace: ['b'], key: 'long', value: { content: 'x'.repeat(40_000) } }),
        /value \(`\$`\).*40000.*32000/s,
      ],
      [
        () => put({ namespace: ['b'], key: 'long', value: { content: 'x'.repeat(40_000) }, index: ['content'] }),
        /content.*32000/s,
      ],
      [
        () =>
          send(
            h,
            'POST',
            '/v1/store/batch',
            JSON.stringify({
              ops: Array.from({ length: 40 }, (_, i) => ({
                op: 'put',
                namespace: ['b'],
                key: `c${i}`,
                value: { content: 'y'.repeat(30_000) },
              })),
            }),
          ),
        /1000000 characters/,
      ],
    ]);
  });

  it('a text the model refuses is a 413 naming the field, the model and its answer', async () => {
    h.model.embeddingMaxChars = 20_000;
    try {
      const before = await written(h);
      const answer = await put({
        namespace: ['b'],
        key: 'refused',
        value: { content: 'z'.repeat(25_000), n: 1 },
        index: ['content'],
      });
      expect(answer.status).toBe(413);
      expect(answer.body.error).toMatch(/embedding model text-embedding-3-small was refused/);
      expect(answer.body.error).toMatch(/`content`.*25000 characters/s);
      expect(answer.body.error).toMatch(/maximum context length/);
      expect(await written(h)).toEqual(before);
    } finally {
      h.model.embeddingMaxChars = Infinity;
    }
  });

  it('an embedding model that fails is a 503 naming it, on every route that embeds', async () => {
    const before = await written(h);
    for (const [method, path, body] of [
      ['GET', '/v1/memories/search?namespace=b&query=tea', undefined],
      ['POST', '/v1/store/items/search', { namespacePrefix: ['b'], query: 'tea' }],
      ['PUT', '/v1/store/items', { namespace: ['b'], key: 'down', value: { content: 'tea' } }],
    ] as const) {
      h.model.failEmbeddings = 1;
      const answer = await send(h, method, path, body === undefined ? undefined : JSON.stringify(body));
      expect(answer.status, path).toBe(503);
      expect(answer.body.error).toMatch(/embedding model text-embedding-3-small/);
    }
    expect(await written(h)).toEqual(before);
  });

  it('a body over 4 MiB that the client writes whole is answered 413, and the client reads it', async () => {
    const port = Number(new URL(h.url).port);
    const size = 5 * 1024 * 1024;
    const answer = await new Promise<{ writeError: string | null; response: string }>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      let response = '';
      let writeError: string | null = null;
      socket.on('data', (d) => (response += d.toString()));
      socket.on('error', (e: NodeJS.ErrnoException) => (writeError = e.code ?? e.message));
      socket.on('close', () => resolve({ writeError, response }));
      socket.on('connect', () => {
        socket.write(
          `PUT /v1/store/items HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${size}\r\n\r\n`,
        );
        // All of it first, reading nothing until the last byte is out (as many HTTP clients do).
        socket.write(Buffer.alloc(size, 0x20), (err) => {
          if (err) writeError = err.message;
          socket.end();
        });
      });
      setTimeout(() => reject(new Error(`no close; got ${response.slice(0, 200)}`)), 30_000).unref();
    });
    expect(answer.writeError).toBeNull();
    expect(answer.response).toMatch(/^HTTP\/1.1 413/);
    expect(answer.response).toMatch(/4 MiB/);
  });
});

describe('embedding endpoint down', () => {
  let h: Harness;
  beforeAll(async () => {
    // A port that was free a moment ago: nothing listens there.
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));
    h = await startHarness({ roles: ['api'], env: { EMBEDDING_BASE_URL: `http://127.0.0.1:${port}/v1` } });
  });
  afterAll(async () => h?.stop());

  it('recall and store search answer 503 naming the embedding model', async () => {
    for (const [method, path, body] of [
      ['GET', '/v1/memories/search?namespace=b&query=tea', undefined],
      ['POST', '/v1/store/items/search', JSON.stringify({ namespacePrefix: ['b'], query: 'tea' })],
    ] as const) {
      const answer = await send(h, method, path, body);
      expect(answer.status, path).toBe(503);
      expect(answer.body.error).toMatch(/embedding model text-embedding-3-small/);
    }
  });
});
