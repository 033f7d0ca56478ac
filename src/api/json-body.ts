import { isUtf8 } from 'node:buffer';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { formatPath, jsonProblem } from '../core/json-bounds.js';
import { InputError } from '../errors.js';

/**
 * Request bodies: JSON, parsed here rather than by Fastify's parser, so that each way a body can
 * be wrong gets its own message. Fastify's answered a valid body holding a `__proto__` key with
 * "Body is not valid JSON", and passed on bodies nested 100,000 levels deep, which JSON.parse
 * takes in its stride and every recursive step after it did not.
 */

/**
 * Levels a body may nest. Deeper than any body the routes take (a batch op's value, at most 64
 * levels itself, sits three levels down), and shallow enough for every recursive step after it.
 */
const BODY_MAX_DEPTH = 100;

/** Replaces Fastify's JSON parser (call before any route is registered). */
export function registerJsonBody(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, bytes, done) => {
    try {
      done(null, parseBody(bodyText(request, bytes as Buffer)));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}

/** A refusal of how a body is encoded: a 415 (errors.ts answers a 4xx error with its message). */
const unsupported = (message: string) => Object.assign(new Error(message), { statusCode: 415 });

/**
 * A body's bytes as text. Bodies are UTF-8: a charset that says otherwise, or a compressed body,
 * is a 415 saying what to send; bytes that are not UTF-8 are a 400, never replaced by U+FFFD
 * (which made two different keys one item, the second put overwriting the first).
 */
export function bodyText(request: FastifyRequest, bytes: Buffer): string {
  const encoding = request.headers['content-encoding'];
  if (encoding && encoding.trim().toLowerCase() !== 'identity')
    throw unsupported(`the body must be sent uncompressed, not with content-encoding: ${encoding.slice(0, 100)}`);
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(request.headers['content-type'] ?? '')?.[1];
  if (charset !== undefined && !/^utf-?8$/i.test(charset))
    throw unsupported(`the body must be UTF-8 (charset=utf-8, or no charset), not charset=${charset.slice(0, 100)}`);
  if (!isUtf8(bytes)) throw new InputError('the body is not valid UTF-8');
  return bytes.toString('utf8');
}

/** A JSON body, or an InputError saying what is wrong with it. */
export function parseBody(text: string): unknown {
  if (text.length === 0)
    throw new InputError('the body is empty, but its content-type says JSON: send a JSON object (or no content-type)');
  let body: unknown;
  try {
    // A byte-order mark is no JSON, but some clients send one.
    body = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    throw new InputError(`the body is not valid JSON: ${(err as Error).message}`);
  }
  // `__proto__` is refused here too: JSON.parse keeps it as a plain key, but the first object
  // copy (a spread, a zod record) turns it into a prototype, silently dropping it.
  const problem = jsonProblem(body, { maxDepth: BODY_MAX_DEPTH });
  if (problem) {
    const at = problem.path.length ? ` at ${formatPath(problem.path)}` : '';
    throw new InputError(`the body${at} ${problem.message}`);
  }
  return body;
}

/**
 * Bytes of a refused body read and dropped after its 413, so that the client reads the answer.
 * A client that writes its whole body before reading (most do) would otherwise find the
 * connection reset under it: closed with unread data, the socket sends a TCP RST, which also
 * discards the 413 waiting in the client's receive buffer. Past this, the connection is cut.
 */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024;

/** The answer to a body over the limit: a 413 naming it, the rest of the body read and dropped. */
export function bodyTooLarge(request: FastifyRequest, reply: FastifyReply) {
  // Fastify asks to close on any body error; kept open, Node reads the rest of the body and the
  // connection stays usable, as after any answered request.
  reply.removeHeader('connection');
  let drained = 0;
  request.raw.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > DRAIN_MAX_BYTES) request.raw.destroy();
  });
  const limit = request.routeOptions.bodyLimit;
  return reply.status(413).send({
    error: `the body is too large: a request may send at most ${limit % 1_048_576 === 0 ? `${limit / 1_048_576} MiB` : `${limit} bytes`}`,
  });
}
