import { connect, createServer, type Server, type Socket } from 'node:net';
import { listenFor } from './ports.js';
import { TEST_REDIS_URL } from './harness.js';

/**
 * A TCP proxy in front of the real Redis (or another server, such as Postgres) that can stall:
 * connections stay open, but what the clients send is held back until `resume`, as when Redis
 * hangs or a network path goes silent. `stop` is the other failure: connections drop and new
 * ones are refused, until `start` listens on the same port again.
 */
export class StallProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private held: [Socket, Buffer][] = [];
  private stalled = false;

  constructor(private readonly target = new URL(TEST_REDIS_URL)) {
    this.server = createServer((client) => {
      const upstream = connect(Number(this.target.port || 6379), this.target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.sockets.delete(s));
      }
      client.on('data', (chunk) => (this.stalled ? this.held.push([upstream, chunk]) : upstream.write(chunk)));
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  /** Listens on `port` (a free one when 0); returns the target's URL with the proxy's address. */
  start(port = 0): Promise<string> {
    return listenFor(this.server, this.target, port);
  }

  get listening(): boolean {
    return this.server.listening;
  }

  /** Whether a client sent something during the stall that is held back still. */
  get holding(): boolean {
    return this.held.length > 0;
  }

  stall() {
    this.stalled = true;
  }

  /** Delivers what was held, in order: a command sent during the stall still runs. */
  resume() {
    this.stalled = false;
    for (const [upstream, chunk] of this.held) upstream.write(chunk);
    this.held = [];
  }

  async stop() {
    this.resume();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
