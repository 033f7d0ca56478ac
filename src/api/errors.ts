import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { InputError } from '../errors.js';
import { RedisTimeoutError } from '../queue/deadline.js';

/**
 * One mapping from failures to HTTP: caller mistakes are 4xx with a message saying what is wrong;
 * anything else is a 500 whose details stay in the log, not in the response.
 */
export function errorHandler(error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) {
  if (error instanceof InputError) {
    return reply.status(error.status).send({ error: error.message, details: error.details });
  }
  const status = (error as FastifyError).statusCode;
  if ((error as FastifyError).code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    // Fastify's message is only "Unsupported Media Type": say what to send instead.
    return reply.status(415).send({ error: `the body must be JSON (content-type: application/json), not ${request.headers['content-type']?.slice(0, 100) ?? 'untyped'}` });
  }
  if (status && status >= 400 && status < 500) {
    // Fastify's own 4xx: malformed JSON, wrong content type, body too large.
    return reply.status(status).send({ error: error.message });
  }
  if (isRedisDown(error)) {
    request.log.warn({ err: error }, 'redis unavailable');
    return reply.status(503).send({ error: 'queue unavailable (Redis is not reachable); nothing was enqueued, retry later' });
  }
  if (error instanceof RedisTimeoutError) {
    // A stalled Redis may still run the command later: the message says what to do about it.
    request.log.warn({ err: error }, 'redis did not answer in time');
    return reply.status(503).send({ error: error.message });
  }
  request.log.error({ err: error, method: request.method, url: request.url }, 'request failed');
  return reply.status(500).send({ error: 'internal error' });
}

function isRedisDown(error: Error): boolean {
  return /Stream isn't writeable|Connection is closed|enableOfflineQueue|ECONNREFUSED|MaxRetriesPerRequest/.test(error.message);
}
