import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, waitFor, type Harness } from './helpers/harness.js';

/**
 * A client that pipelines requests and never reads the answers: its connection is closed after
 * a bounded number, instead of the process queueing every answer in memory.
 */
describe('pipelined requests whose answers are never read', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'] });
  });
  afterAll(async () => h?.stop());

  it('close the connection after a bounded number of answers, and the API keeps answering others', async () => {
    const { port } = new URL(h.url);
    const received = Array.from({ length: 5 }, () => '');
    const closed = received.map(() => false);
    const sockets = received.map((_, i) => {
      const s = net.connect(Number(port), '127.0.0.1');
      s.pause(); // reads nothing while the requests are handled
      s.on('error', () => undefined);
      s.on('data', (chunk: Buffer) => (received[i] += chunk.toString('latin1')));
      s.on('close', () => (closed[i] = true));
      s.on('connect', () => s.write('GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(2_000)));
      return s;
    });
    try {
      const health = await fetch(`${h.url}/healthz`);
      expect(health.status).toBe(200);
      await new Promise((r) => setTimeout(r, 1_000));
      // Read what each connection was sent: a bounded number of answers, then its end.
      for (const s of sockets) s.resume();
      await waitFor(() => closed.every(Boolean), { timeoutMs: 10_000 });
      for (const text of received) expect(text.split('HTTP/1.1 200').length - 1).toBeLessThanOrEqual(32);
      // One request at a time on a connection is untouched.
      for (let i = 0; i < 40; i++) expect((await fetch(`${h.url}/openapi.json`)).status).toBe(200);
    } finally {
      for (const s of sockets) s.destroy();
    }
  });
});
