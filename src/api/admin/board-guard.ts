import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { redisStalled, redisState, redisUnavailable } from '../../dependency-errors.js';
import { InputError, LimitError } from '../../errors.js';
import { storableText } from '../../core/safe-text.js';
import { frameworkErrorMessage } from '../framework-errors.js';
import { parse } from '../parse.js';
import { sameOrigin } from './forms.js';

/** Bull Board's answer to an error, as its adapter takes it. */
interface BoardAnswer {
  // Its type lists fewer statuses than its Fastify adapter passes on.
  status: 500;
  body: { error: string };
}
const answer = (status: number, error: string): BoardAnswer => ({ status: status as 500, body: { error } });

/**
 * Bull Board's error handler: what its routes throw (Fastify's body parsing among it) becomes
 * the API's statuses. A body the JSON parser refuses (json-body.ts) is an InputError without a
 * statusCode, which fell through to a 500; a stalled or lost Redis (commandTimeout, runtime.ts)
 * is a 503 naming it, not a request that hangs, nor a 500 with the raw message.
 */
export function boardErrorHandler(logger: FastifyBaseLogger) {
  return (error: Error): BoardAnswer => {
    if (error instanceof InputError) return answer(error instanceof LimitError ? 413 : 400, error.message);
    const status = (error as { statusCode?: number }).statusCode;
    if (status && status < 500) return answer(status, frameworkErrorMessage(error, status));
    if (redisUnavailable(error) || redisStalled(error)) {
      logger.warn({ err: error }, 'bull board: redis unavailable');
      return answer(503, `queue unavailable: Redis ${redisState(error)}; retry later`);
    }
    logger.error({ err: error }, 'bull board request failed');
    return answer(500, 'internal error');
  };
}

/**
 * Bull Board's own refusals carry a translation key, `{ error: { key: "ERRORS.QUEUE_NOT_FOUND" } }`,
 * not the API's `{ error: "<what is wrong>" }`: rewritten here as text (`queue not found`, with
 * its options), which its UI shows as it is (a string `error` is shown untranslated). The other
 * fields (`code`, which the UI reads) are kept.
 */
export function boardRefusalsAsText(scope: FastifyInstance, basePath: string): void {
  scope.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode < 400 || typeof payload !== 'string' || !request.url.startsWith(basePath)) return payload;
    if (!String(reply.getHeader('content-type') ?? '').startsWith('application/json')) return payload;
    let body: unknown;
    try {
      body = JSON.parse(payload);
    } catch {
      return payload;
    }
    if (!body || typeof body !== 'object' || typeof (body as { error?: unknown }).error === 'string') return payload;
    const { error, ...rest } = body as { error?: unknown };
    return JSON.stringify({ ...rest, error: refusalText(error, reply.statusCode) });
  });
}

function refusalText(error: unknown, status: number): string {
  const { key, options } = (error && typeof error === 'object' ? error : {}) as { key?: unknown; options?: unknown };
  if (typeof key !== 'string') return `refused (${status})`;
  const text = key
    .replace(/^ERRORS\./, '')
    .toLowerCase()
    .replaceAll('_', ' ');
  return options && typeof options === 'object' && Object.keys(options).length
    ? `${text}: ${JSON.stringify(options)}`
    : text;
}

/**
 * CSRF for Bull Board's API, as the memory browser's forms have it (forms.ts sameOrigin): a
 * browser sends its cached Basic credentials with any site's request, and a cross-site
 * `fetch(..., { method: 'POST', mode: 'no-cors' })` without a body needs no preflight, so a
 * page elsewhere could add, retry or clean jobs. Every request but a read must come from this
 * origin; the board's own UI sends `Origin` with each, a script must send it too.
 */
export function boardSameOrigin(scope: FastifyInstance, basePath: string): void {
  scope.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith(basePath) || ['GET', 'HEAD', 'OPTIONS'].includes(request.method)) return;
    if (sameOrigin(request)) return;
    return reply.status(403).send({
      error: `a ${request.method} to Bull Board must come from a page of this site: send an Origin header naming it (${originOf(request)})`,
    });
  });
}

const originOf = (request: FastifyRequest) => `${request.protocol}://${request.headers.host ?? 'this host'}`;

/**
 * Job states a `:queueStatus` may name: Bull Board's (its UI's tabs) and BullMQ's (`clean`).
 * Bull Board passed any text on: `clean/nope` answered 200 after asking BullMQ to clean a set
 * that does not exist.
 */
const QUEUE_STATUSES = [
  'latest',
  'active',
  'waiting',
  'wait',
  'waiting-children',
  'prioritized',
  'completed',
  'failed',
  'delayed',
  'paused',
] as const;
const boardParams = z.looseObject({ queueStatus: z.enum(QUEUE_STATUSES).optional() });
/** A body, when one is sent, is a JSON object: Bull Board added a job for a body of `[]`. */
const boardBody = z.looseObject({}).optional();
/**
 * Query values are text without NUL or lone surrogates: Bull Board's own check of them threw
 * (a 500) on NUL, building its message. It also decodes `activeQueue` a second time, which
 * threw on a lone `%`; such a value is refused here.
 */
const queryText = z.string().check(storableText);
const boardQuery = z
  .looseObject({
    // The job list's tab: Bull Board's own refusal of another named only the field.
    status: z.enum(QUEUE_STATUSES).optional(),
    activeQueue: z
      .string()
      .refine((v) => {
        try {
          decodeURIComponent(v);
          return true;
        } catch {
          return false;
        }
      }, 'must be a queue name, percent-encoded at most once')
      .optional(),
  })
  .catchall(z.preprocess((v): unknown => (Array.isArray(v) ? (v as unknown[]) : [v]), z.array(queryText)));

/** Checks what Bull Board's API routes take before they run: a 400 naming what is wrong. */
export function boardInputChecks(scope: FastifyInstance, apiPath: string): void {
  scope.addHook('preValidation', async (request) => {
    if (!request.url.startsWith(apiPath)) return;
    parse(boardParams, request.params, 'path');
    parse(boardQuery, request.query, 'query string');
    parse(boardBody, request.body, 'request body');
  });
}
