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
