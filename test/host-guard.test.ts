import { request } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';

/**
 * DNS rebinding: a page on attacker.example, its name pointed at 127.0.0.1, reaches a loopback
 * engram as its own origin. The browser then sends the attacker's name as Host (and Origin), which
 * is what these requests send; fetch cannot set Host, so they go through node:http.
 */
describe('the Host allowlist', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  const send = (
    method: string,
    path: string,
    headers: Record<string, string>,
    body?: string,
  ): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const url = new URL(path, h?.url);
      const req = request(url, { method, headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  const port = () => new URL(h?.url ?? '').port;
  const initialize = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'curl', version: '1' } },
  });
  const exportAll = (host: string) => send('GET', '/v1/export?namespace=memories', { host });
  const mcpInit = (host: string, origin: string) =>
    send(
      'POST',
      '/mcp',
      {
        host,
        origin,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'x-engram-context': '{"userId":"u1"}',
      },
      initialize,
    );
  /** The requests the review sent as a rebound page: an export, MCP initialize, the erase form. */
  const attacks = (host: string, origin = `http://${host}`) =>
    Promise.all([
      exportAll(host),
      mcpInit(host, origin),
      send(
        'POST',
        '/admin/memories/erase',
        { host, origin, 'content-type': 'application/x-www-form-urlencoded' },
        'userId=u1&confirm=yes',
      ),
      send('GET', '/admin/memories', { host }),
      send('GET', '/no/such/route', { host }),
    ]);

  it('on loopback, refuses a foreign Host on every route before it runs, and takes loopback names', async () => {
    h = await startHarness({ roles: ['api'] });
    await h.runtime.storeApi.put({ namespace: ['memories', 'u1'], key: 'k', value: { content: 'secret' } });
    for (const res of await attacks(`attacker.example:${port()}`)) {
      expect(res.status).toBe(421);
      expect(JSON.parse(res.body)).toEqual({ error: expect.stringContaining('add the name to ALLOWED_HOSTS') });
    }
    // The erase never ran.
    expect(await h.runtime.storeApi.search({ namespacePrefix: ['memories', 'u1'] })).toHaveLength(1);
    for (const host of [`localhost:${port()}`, `127.0.0.1:${port()}`, `[::1]:${port()}`, 'LOCALHOST']) {
      const exported = await exportAll(host);
      expect([host, exported.status]).toEqual([host, 200]);
      expect(exported.body).toContain('secret');
      expect([host, (await mcpInit(host, `http://${host}`)).status]).toEqual([host, 200]);
    }
    // Probes are asked by the pod's address, and show nothing a page could want.
    expect((await send('GET', '/healthz', { host: 'attacker.example' })).status).toBe(200);
    // Not a host at all: user info smuggled in, a path, nothing.
    for (const host of ['attacker.example@localhost', 'localhost/x', ' '])
      expect([host, (await exportAll(host)).status]).toEqual([host, 421]);
  });

  it('refuses /mcp from a foreign page even with a trusted Host (Origin), and takes local pages', async () => {
    h = await startHarness({ roles: ['api'] });
    const mcp = (origin: string) => mcpInit(`localhost:${port()}`, origin);
    for (const origin of ['http://attacker.example', 'null', 'file:///tmp/x.html', 'not a url']) {
      const res = await mcp(origin);
      expect([origin, res.status]).toEqual([origin, 403]);
      expect(JSON.parse(res.body).error).toContain('ALLOWED_HOSTS');
    }
    for (const origin of ['http://localhost:5173', 'http://127.0.0.1:6274'])
      expect([origin, (await mcp(origin)).status]).toEqual([origin, 200]);
  });

  it('ALLOWED_HOSTS widens it: the names listed pass, on any port, loopback names still do', async () => {
    h = await startHarness({ roles: ['api'], env: { ALLOWED_HOSTS: 'Engram.Example, other.example' } });
    // The erase form too: Host is trusted now, so its same-origin check holds, and it redirects.
    const passed = await attacks(`engram.example:${port()}`);
    expect(passed.map((r) => r.status)).toEqual([200, 200, 303, 200, 404]);
    expect((await exportAll('other.example:8443')).status).toBe(200);
    expect((await exportAll(`localhost:${port()}`)).status).toBe(200);
    expect((await exportAll('attacker.example')).status).toBe(421);
  });

  it('beyond loopback, any Host by default, but still not a foreign page on /mcp', async () => {
    h = await startHarness({ roles: ['api'], env: { HOST: '0.0.0.0', ALLOW_OPEN_ACCESS: 'true' } });
    expect((await exportAll('engram.internal:3000')).status).toBe(200);
    expect((await mcpInit('engram.internal', 'http://attacker.example')).status).toBe(403);
  });

  it('refuses an ALLOWED_HOSTS entry that is no name, saying how to write one', async () => {
    await expect(
      startHarness({ roles: ['api'], env: { ALLOWED_HOSTS: 'ok.example,https://x.example:443' } }),
    ).rejects.toThrow(/ALLOWED_HOSTS: "https:\/\/x.example:443" is not a host name: give names without scheme or port/);
  });

  it('refuses no Host and two Host headers with a 400 saying so, before any route', async () => {
    h = await startHarness({ roles: ['api'] });
    const url = new URL(h.url);
    /** One request written by hand: node:http and fetch always send one Host. */
    const raw = (head: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const socket = connect(Number(url.port), url.hostname, () => socket.end(`${head}\r\n\r\n`));
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => (text += chunk));
        socket.on('error', reject);
        socket.on('close', () =>
          resolve({ status: Number(text.split(' ')[1]), body: text.slice(text.indexOf('\r\n\r\n') + 4) }),
        );
      });
    const none = await raw('GET /healthz HTTP/1.1\r\nConnection: close');
    expect([none.status, JSON.parse(none.body)]).toEqual([
      400,
      { error: 'an HTTP/1.1 request without a Host header: send one (Host: 127.0.0.1:<port>, say)' },
    ]);
    const two = await raw(
      `GET /v1/export?namespace=memories HTTP/1.1\r\nHost: attacker.example\r\nHost: 127.0.0.1:${url.port}\r\nConnection: close`,
    );
    expect([two.status, JSON.parse(two.body)]).toEqual([
      400,
      { error: 'a request with 2 Host headers: send exactly one' },
    ]);
    // HTTP/1.0 has no Host to require: a probe without one is still answered.
    expect((await raw('GET /healthz HTTP/1.0')).status).toBe(200);
  });
});
