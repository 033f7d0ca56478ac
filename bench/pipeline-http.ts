/**
 * The HTTP client of `bench:pipeline`: node:http with keep-alive agents (no fetch: undici's
 * per-request cost would load the driver, which shares the 2 cores with what it measures).
 */
import { Agent, request } from 'node:http';

export interface Http {
  /** POST a turn; resolves on 202, rejects on anything else. */
  turn(threadId: string, body: unknown): Promise<void>;
  /** GET a path and parse the JSON answer (200 only). */
  getJson<T>(path: string): Promise<T>;
  /** GET /healthz through its own one-socket agent (the floor of a request that does no work). */
  health(): Promise<void>;
  close(): void;
}

export function httpClient(base: string, sockets: number): Http {
  const turns = new Agent({ keepAlive: true, maxSockets: sockets });
  // Reads apart from writes, so that a poll never waits behind queued turns (it would add that
  // wait to the freshness it measures).
  const reads = new Agent({ keepAlive: true, maxSockets: Math.max(8, sockets / 2) });
  const floor = new Agent({ keepAlive: true, maxSockets: 1 });
  const call = (agent: Agent, method: string, path: string, payload?: string) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const headers = payload
        ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
        : undefined;
      const req = request(`${base}${path}`, { method, agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  return {
    async turn(threadId, body) {
      const res = await call(turns, 'POST', `/v1/threads/${threadId}/turns`, JSON.stringify(body));
      if (res.status !== 202) throw new Error(`turn ${threadId}: HTTP ${res.status} ${res.text.slice(0, 200)}`);
    },
    async getJson<T>(path: string) {
      const res = await call(reads, 'GET', path);
      if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status} ${res.text.slice(0, 200)}`);
      return JSON.parse(res.text) as T;
    },
    async health() {
      const res = await call(floor, 'GET', '/healthz');
      if (res.status !== 200) throw new Error(`/healthz: HTTP ${res.status}`);
    },
    close() {
      turns.destroy();
      reads.destroy();
      floor.destroy();
    },
  };
}
