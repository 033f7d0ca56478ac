import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import {
  postgresPoolBusy,
  postgresUnavailable,
  redisStalled,
  redisState,
  redisUnavailable,
} from '../dependency-errors.js';
import { ThrottledWarnings } from '../observability/throttled-warning.js';
import { CLIENT_GONE } from './abandonable.js';
import { providerWaitMs } from '../llm/retry.js';
import { frameworkErrorMessage } from './framework-errors.js';
import { bodyTooLarge } from './json-body.js';
import { AuthError, ConflictError, InputError, LimitError, ModelOutputError, UnavailableError } from '../errors.js';

/**
 * The one mapping from failures to HTTP statuses (nowhere else decides one): caller mistakes
 * are 4xx with a message saying what is wrong; a dependency out of reach is a 503 naming it;
 * anything else is a 500 whose details stay in the log, not in the response.
 */
export function errorHandler(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) {
  if (error === CLIENT_GONE) {
    // Nobody reads the answer (abandonable.ts): 499, nginx's "client closed request", for the
    // logs and the metrics.
    request.log.info({ ms: Math.round(reply.elapsedTime) }, 'request stopped: client gone');
    return reply.status(499).send({ error: CLIENT_GONE.message });
  }
  if (error instanceof InputError) {
    return reply
      .status(error instanceof LimitError ? 413 : 400)
      .send({ error: error.message, details: withoutPatterns(error.details) });
  }
  if (error instanceof ConflictError) return reply.status(409).send({ error: error.message, details: error.details });
  if (error instanceof AuthError) return reply.status(error.forbidden ? 403 : 401).send({ error: error.message });
  if (error instanceof ModelOutputError && error.reason === 'too-long') {
    // The caller's text is longer than the embedding model takes: theirs to shorten.
    return reply.status(413).send({ error: error.message });
  }
  if ((error as FastifyError).code === 'FST_ERR_CTP_BODY_TOO_LARGE') return bodyTooLarge(request, reply);
  const status = (error as FastifyError).statusCode;
  if ((error as FastifyError).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    // Fastify's message is only "Unsupported Media Type": say what to send instead, which is
    // JSON but for a route whose document says otherwise (an import: NDJSON).
    const consumes = (request.routeOptions.schema as { consumes?: string[] } | undefined)?.consumes?.[0];
    const wanted = consumes && consumes !== 'application/json' ? consumes : undefined;
    return reply.status(415).send({
      error: `the body must be ${wanted ? `content-type: ${wanted}` : 'JSON (content-type: application/json)'}, not ${request.headers['content-type']?.slice(0, 100) ?? 'untyped'}`,
    });
  }
  if (status && status >= 400 && status < 500) {
    // Fastify's own 4xx and its plugins' (the static files of /docs), in words.
    return reply.status(status).send({ error: frameworkErrorMessage(error, status, request.url) });
  }
  // Postgres first: a raw socket error reaches a handler only from pg (ioredis wraps its own).
  if (postgresPoolBusy(error)) {
    warnUnavailable(request, error, 'postgres', 'no free Postgres connection in time (pool busy)');
    return reply.status(503).send({
      error:
        'the memory store (Postgres) had no free connection in time: every connection of this process (DATABASE_POOL_MAX) was busy; retry later',
    });
  }
  if (postgresUnavailable(error)) {
    warnUnavailable(request, error, 'postgres', 'postgres unavailable');
    return reply.status(503).send({ error: 'the memory store (Postgres) is not reachable; retry later' });
  }
  if (redisUnavailable(error) || redisStalled(error)) {
    warnUnavailable(request, error, 'redis', 'redis unavailable');
    return reply.status(503).send({ error: redisAdvice(request, redisState(error)) });
  }
  if (error instanceof UnavailableError) {
    // A stalled Redis may still run the command later: the message says what to do about it.
    warnUnavailable(request, error, error.dependency, 'dependency unavailable');
    // A model provider that said how long its rate limit lasts: the caller is told the same.
    const waitMs = providerWaitMs(error);
    if (waitMs !== undefined) void reply.header('retry-after', String(Math.max(1, Math.ceil(waitMs / 1000))));
    return reply.status(503).send({ error: error.message });
  }
  request.log.error({ err: error, method: request.method, url: request.url }, 'request failed');
  return reply.status(500).send({ error: 'internal error' });
}

/** A dependency's failures are said once per window, with a count of the ones held back. */
const WARN_EVERY_S = 10;
const unavailable = new ThrottledWarnings(WARN_EVERY_S * 1000);

function warnUnavailable(request: FastifyRequest, err: Error, dependency: string, message: string): void {
  const heldBack = unavailable.take(dependency);
  if (heldBack === null) return;
  request.log.warn(
    { err, dependency, method: request.method, url: request.url, heldBack },
    `${message}: answered 503 (others like it within ${WARN_EVERY_S} s are counted in the next line, not logged)`,
  );
}

/** The turns route's answer says how to re-send safely; the others only to retry. */
const TURNS_ROUTE = '/v1/threads/:threadId/turns';

function redisAdvice(request: FastifyRequest, state: string): string {
  // Not "nothing was enqueued": a command in flight when the connection dropped may have run.
  if (request.routeOptions.url === TURNS_ROUTE)
    return `queue unavailable (Redis ${state}); send the turns again later with the same message ids, which make a re-send a no-op`;
  return `queue unavailable (Redis ${state}); retry later`;
}

/**
 * Zod's issue for a bad format carries the regular expression it failed: for a date-time some
 * 400 characters that tell a client nothing `format: "datetime"` and the message do not.
 */
function withoutPatterns(details: unknown): unknown {
  if (!Array.isArray(details)) return details;
  return details.map((issue: unknown) => {
    if (!issue || typeof issue !== 'object' || !('pattern' in issue)) return issue;
    const { pattern: _pattern, ...rest } = issue as Record<string, unknown>;
    return rest;
  });
}
