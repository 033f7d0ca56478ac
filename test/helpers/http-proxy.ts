import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/**
 * An HTTP proxy in front of the real API that can fail on purpose: the next `failNext`
 * requests are answered 503 (as engram answers with a dependency down, or `failure`) or, with `drop`, have
 * their connection cut before any answer. Everything else is forwarded as it is.
 */
export class FlakyHttpProxy {
  private readonly server: Server;
  /** Requests that reached the proxy, failed or forwarded. */
  requests = 0;
  failNext = 0;
  drop = false;
  /** How a failed request is answered: engram's 503 by default, or a gateway's own (a 429, say). */
  failure: { status: number; headers?: Record<string, string>; body: string } = {
    status: 503,
    body: JSON.stringify({ error: 'the memory store (Postgres) is not reachable; retry later' }),
  };
  /** Rewrites the API's answers to requests of a path (a server of an earlier version, say). */
  rewrite: { path: string; body: (text: string) => string } | null = null;

  constructor(private readonly target: string) {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  private handle(req: IncomingMessage, res: ServerResponse) {
    this.requests++;
    if (this.failNext > 0) {
      this.failNext--;
      // The body is read first, so that the client gets the answer (not a reset).
      req.resume();
      req.on('end', () => {
        if (this.drop) return res.socket?.destroy();
        res.writeHead(this.failure.status, { 'content-type': 'application/json', ...this.failure.headers });
        res.end(this.failure.body);
      });
      return;
    }
    const url = new URL(req.url ?? '/', this.target);
    const rewrite = this.rewrite?.path === url.pathname ? this.rewrite.body : null;
    const upstream = request(url, { method: req.method, headers: req.headers }, (answer) => {
      if (!rewrite) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (c: Buffer) => chunks.push(c));
      answer.on('end', () => {
        const text = rewrite(Buffer.concat(chunks).toString('utf8'));
        const { 'content-length': _length, 'transfer-encoding': _chunked, ...headers } = answer.headers;
        res.writeHead(answer.statusCode ?? 502, { ...headers, 'content-length': Buffer.byteLength(text) });
        res.end(text);
      });
    });
    upstream.on('error', () => res.socket?.destroy());
    // A client that gives up (its timeout) takes its upstream request with it.
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    if (!address || typeof address !== 'object') throw new Error('proxy has no port');
    return `http://127.0.0.1:${address.port}`;
  }

  async stop() {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
