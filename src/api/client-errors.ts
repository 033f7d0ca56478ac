import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '../observability/logger.js';

/** The deadlines and the header bound a client that breaks them is told about. */
export interface ClientErrorLimits {
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  /** Node's --max-http-header-size (http.maxHeaderSize): 16 KiB unless the process sets it. */
  maxHeaderBytes: number;
}

/**
 * Answers what Node's HTTP parser refuses before any route runs: a request that did not arrive
 * in time, headers over Node's bound, bytes that are not HTTP. Fastify's own answers say only
 * "Client Timeout" or "Exceeded maximum allowed HTTP header size" in a shape of its own; these
 * are engram's `{ error }` and name the limit and the setting, as every other refusal does.
 * Debug level: at scale these are scanners and load balancers' probes, not news.
 */
export function clientErrorHandler(limits: ClientErrorLimits, log: Logger) {
  return (err: Error & { code?: string }, socket: Socket): void => {
    // A reset or already closed connection has no one to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const [status, error] = refusal(err.code, limits);
    log.debug({ code: err.code, status }, 'client error before routing');
    if (socket.writable) {
      const body = JSON.stringify({ error });
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy(err);
  };
}

function refusal(code: string | undefined, limits: ClientErrorLimits): [number, string] {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return [
      408,
      `the request did not arrive in time: headers must arrive within ${limits.headersTimeoutMs} ms and the whole ` +
        `request within ${limits.requestTimeoutMs} ms (HTTP_REQUEST_TIMEOUT_MS)`,
    ];
  if (code === 'HPE_HEADER_OVERFLOW')
    return [431, `the request's headers exceed ${limits.maxHeaderBytes} bytes, Node's bound (--max-http-header-size)`];
  return [400, `the request is not valid HTTP (${code ?? 'unparsable'})`];
}
