import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';

/**
 * Requests one connection may have in flight (sent, not yet answered). Node parses every
 * pipelined request a packet brings at once (a 64 KB read holds some 1,500 short GETs) and
 * queues each answer in memory until the client reads: 2,000 requests for the OpenAPI document
 * on a socket never read grew the process by about 100 MB per socket (a review's 20 such
 * sockets: 2 GB, and /healthz took 5 s). HTTP clients send one request at a time (browsers,
 * undici by default) or pipeline a few; none needs more.
 */
const IN_FLIGHT_MAX = 32;
/** Answers written to a connection and not read by its client, past which its next request closes it. */
const UNREAD_MAX_BYTES = 8 * 1024 * 1024;

/** Closes a connection whose client sends requests without reading the answers. */
export function guardPipelining(app: FastifyInstance): void {
  const inFlight = new WeakMap<Socket, number>();
  app.addHook('onRequest', (request, reply, done) => {
    const socket = request.raw.socket;
    const requests = (inFlight.get(socket) ?? 0) + 1;
    inFlight.set(socket, requests);
    if (requests <= IN_FLIGHT_MAX && socket.writableLength <= UNREAD_MAX_BYTES) return done();
    request.log.warn(
      { requestsInFlight: requests, unreadBytes: socket.writableLength, remoteAddress: socket.remoteAddress },
      'closing a connection whose client sends requests without reading the answers',
    );
    socket.destroy();
    // Ends the request's lifecycle (a hook that answers does not call done); nothing is written.
    void reply
      .status(503)
      .send({ error: 'this connection has too many requests its client has not read the answers of' });
  });
  app.addHook('onResponse', (request, _reply, done) => {
    const socket = request.raw.socket;
    const requests = inFlight.get(socket);
    if (requests !== undefined) inFlight.set(socket, requests - 1);
    done();
  });
}
