import { connect, createServer, type Server, type Socket } from 'node:net';
import { listenFor } from './ports.js';

/**
 * A TCP proxy in front of Postgres that counts round trips: a client's send that follows an
 * answer from the server starts a new one, and sends with no answer between them (a pipeline)
 * count once. `reset` starts a count after the connection's startup.
 */
export class RoundTripProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private answered = true;
  roundTrips = 0;

  constructor(private readonly target: URL) {
    this.server = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.sockets.delete(s));
      }
      client.on('data', (chunk) => {
        if (this.answered) this.roundTrips++;
        this.answered = false;
        upstream.write(chunk);
      });
      upstream.on('data', (chunk) => {
        this.answered = true;
        client.write(chunk);
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  /** Listens on a free port; returns the target's URL with the proxy's address. */
  start(): Promise<string> {
    return listenFor(this.server, this.target);
  }

  reset() {
    this.roundTrips = 0;
    this.answered = true;
  }

  async stop() {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
