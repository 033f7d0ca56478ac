import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';

/** What a raw connection got before the server closed it. */
function raw(url: string, onConnect: (socket: Socket) => void): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => onConnect(socket));
    let got = '';
    socket.on('data', (chunk) => (got += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => resolve(got));
  });
}

/** The JSON body after the head of a raw response. */
const bodyOf = (got: string) => JSON.parse(got.slice(got.indexOf('\r\n\r\n') + 4)) as { error: string };

/**
 * A peer that holds a connection without finishing its request is cut off: HTTP_REQUEST_TIMEOUT_MS
 * for the whole request (1 s here, a minute by default), at most 10 s for the headers. What Node's
 * parser refuses (headers over its bound, bytes that are not HTTP) is answered in engram's shape,
 * naming the limit.
 */
describe('API: slow, silent and malformed clients', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], env: { HTTP_REQUEST_TIMEOUT_MS: '1000' } });
  });
  afterAll(() => h?.stop());

  it('a body trickled a byte at a time gets 408 and the connection is closed', async () => {
    let timer: NodeJS.Timeout | undefined;
    const got = await raw(h.url, (socket) => {
      socket.write(
        'POST /v1/threads/t1/turns HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{',
      );
      timer = setInterval(() => socket.writable && socket.write(' '), 200);
    });
    clearInterval(timer);
    expect(got).toMatch(/^HTTP\/1\.1 408 /);
    expect(bodyOf(got).error).toContain('within 1000 ms (HTTP_REQUEST_TIMEOUT_MS)');
    expect(await h.runtime.buffer.read('t1', null, 10, 0)).toMatchObject({ pending: [] });
  });

  it('headers that never end get 408', async () => {
    const got = await raw(h.url, (socket) => socket.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: '));
    expect(got).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('a connection that sends nothing gets 408 and is closed', async () => {
    expect(await raw(h.url, () => undefined)).toMatch(/^HTTP\/1\.1 408 /);
  });

  it("headers over Node's bound get 431 naming the bound, and the connection is closed", async () => {
    const got = await raw(h.url, (socket) =>
      socket.write(`GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`),
    );
    expect(got).toMatch(/^HTTP\/1\.1 431 /);
    expect(bodyOf(got).error).toBe("the request's headers exceed 16384 bytes, Node's bound (--max-http-header-size)");
  });

  it('bytes that are not HTTP get 400 saying so, and the connection is closed', async () => {
    const got = await raw(h.url, (socket) => socket.write('HELLO\0 / HTTP/1.1\r\n\r\n'));
    expect(got).toMatch(/^HTTP\/1\.1 400 /);
    expect(bodyOf(got).error).toMatch(/^the request is not valid HTTP \(HPE_[A-Z_]+\)$/);
    expect(await (await fetch(`${h.url}/healthz`)).json()).toMatchObject({ ok: true });
  });

  it('a request sent in time is answered as usual on the same kind of connection', async () => {
    const got = await raw(h.url, (socket) =>
      socket.end('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n'),
    );
    expect(got).toMatch(/^HTTP\/1\.1 200 /);
  });
});

/**
 * A batch is work the client asked for: once it has gone, or the batch has run longer than
 * HTTP_REQUEST_TIMEOUT_MS, the rest is not run. A batch of 1,000 hybrid searches ran for three
 * minutes after its client gave up at 5 s.
 */
describe.each([
  { timeoutMs: 60_000, what: 'its client goes' },
  { timeoutMs: 1_500, what: 'its time is up' },
])('API: a batch stops when $what', ({ timeoutMs }) => {
  let h: Harness;
  const ITEMS = 200;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], env: { HTTP_REQUEST_TIMEOUT_MS: String(timeoutMs) } });
    const ops = Array.from({ length: ITEMS }, (_, i) => ({
      op: 'put',
      namespace: ['slow', String(i % 10)],
      key: `k${i}`,
      value: { text: `tea number ${i} with lemon and honey, brewed at ${i % 7} minutes` },
      // Long enough to outlive the test, short enough that a read renews it (past 1% of it).
      ttl: 60_000,
    }));
    expect((await post({ ops })).status).toBe(200);
  });
  afterAll(async () => {
    // The aborted request's server socket lingers until the keep-alive timeout (as any request a
    // client aborts mid-way, fix or not), which would hold the stop for a minute.
    h?.runtime.server?.server.closeAllConnections();
    await h?.stop();
  });

  const post = (body: unknown, signal?: AbortSignal) =>
    fetch(`${h.url}/v1/store/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal,
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as { error?: string } }));
  const searches = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      op: 'search',
      namespacePrefix: ['slow'],
      query: `lemon ${i}`,
      mode: 'hybrid',
      limit: 100,
    }));
  const expiries = async () => {
    const ops = Array.from({ length: ITEMS }, (_, i) => ({
      op: 'get',
      namespace: ['slow', String(i % 10)],
      key: `k${i}`,
      refreshTtl: false,
    }));
    const { body } = await post({ ops });
    return (body as { results: { expiresAt: string }[] }).results.map((r) => r.expiresAt);
  };
  const pastRefreshWindow = () => new Promise((r) => setTimeout(r, 700));

  it.runIf(timeoutMs === 60_000)(
    'a client that closes the connection stops the batch between ops: its reads do not finish',
    async () => {
      // How long the batch takes to its end, which renews every item it read (its last step).
      await pastRefreshWindow();
      let before = await expiries();
      const started = Date.now();
      expect((await post({ ops: searches(40) })).status).toBe(200);
      const whole = Date.now() - started;
      expect(whole, 'the batch must take long enough to leave it part way').toBeGreaterThan(600);
      expect(await expiries()).not.toEqual(before);

      await pastRefreshWindow();
      before = await expiries();
      await expect(post({ ops: searches(40) }, AbortSignal.timeout(Math.round(whole / 5)))).rejects.toThrow();
      // Twice what the whole batch took: had it run on, it would have renewed them by now.
      await new Promise((r) => setTimeout(r, 2 * whole));
      expect(await expiries()).toEqual(before);
    },
    // About five times the batch's own time, which a loaded 2-core host stretches to seconds.
    120_000,
  );

  it.runIf(timeoutMs === 1_500)(
    'a batch still running at HTTP_REQUEST_TIMEOUT_MS is stopped with a 413 saying so',
    async () => {
      const answer = await post({ ops: searches(1_000) });
      expect(answer.status, JSON.stringify(answer.body)).toBe(413);
      expect(answer.body.error).toMatch(/did not finish within 1500 ms \(HTTP_REQUEST_TIMEOUT_MS\).*fewer ops/);
    },
    30_000,
  );
});
