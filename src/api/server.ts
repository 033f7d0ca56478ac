import { maxHeaderSize } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { Logger } from '../observability/logger.js';
import { everyQueue, type EngramQueues } from '../queue/queues.js';
import { TimeoutError, withTimeout } from '../with-timeout.js';
import { requireAdminPassword } from './admin/basic-auth.js';
import { boardErrorHandler, boardInputChecks, boardRefusalsAsText, boardSameOrigin } from './admin/board-guard.js';
import { memoryBrowser } from './admin/memory-browser.js';
import { clientErrorHandler } from './client-errors.js';
import { errorHandler } from './errors.js';
import { registerHostGuard, type AllowedHosts } from './host-guard.js';
import { guardPipelining } from './pipelining-guard.js';
import { parseQueryString, refuseUndecodedQueries } from './query-string.js';
import { notFoundOrWrongMethod, trackRoutes } from './method-not-allowed.js';
import { registerJsonBody } from './json-body.js';
import { registerMcpRoute, type McpRouteDeps } from './mcp-route.js';
import { registerMetricsRoute } from './metrics-server.js';
import { documentBoard, opsSchemas, registerOpenApi } from './openapi.js';
import { documentApiRoutes, useZodSchemas } from './route-schema.js';
import { registerRoutes, type ApiDeps } from './routes.js';
import { registerStoreRoutes } from './store-routes.js';
import { registerLifecycleRoutes, type LifecycleDeps } from './lifecycle-routes.js';
import { registerToolRoutes, type ToolRouteDeps } from './tool-routes.js';
import type { StoreService } from '../store/store-service.js';

export interface ServerDeps extends ApiDeps, LifecycleDeps, ToolRouteDeps {
  store: StoreService;
  queues: EngramQueues;
  /** Dependency checks for /readyz; each resolves or throws. */
  readiness: Record<string, () => Promise<unknown>>;
  log: Logger;
  /** Basic-auth password for Bull Board (user `admin`); the board is open when unset. */
  adminPassword?: string | undefined;
  /** MCP at /mcp (mcp-route.ts): the kinds and embedder its tools write with; no /mcp when unset. */
  mcp?: McpRouteDeps['mcp'];
  /** HTTP_REQUEST_TIMEOUT_MS: headers and body must arrive within this long (60 s when unset). */
  requestTimeoutMs?: number;
  /** Host names answered besides loopback ones (ALLOWED_HOSTS, or its default for HOST). */
  allowedHosts: AllowedHosts;
}

/** A probe must answer in time: a stalled dependency is not ready, whatever it says later. */
const READY_TIMEOUT_MS = 2_000;

/**
 * Thread ids run to 128 characters (LIMITS.idChars); Fastify's default of 100 answered 414 for
 * 101-128. Twice that, so an id somewhat too long gets the schema's 400 naming the limit.
 */
const MAX_PARAM_LENGTH = 256;

/** Fastify: logs through the same pino logger, validates with the routes' zod schemas. */
export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  // Typed as Fastify's logger (see metrics-server.ts).
  const logger: FastifyBaseLogger = deps.log.child({ component: 'api' });
  const requestTimeout = deps.requestTimeoutMs ?? 60_000;
  const headersTimeout = Math.min(10_000, requestTimeout);
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: 4 * 1024 * 1024,
    // A request (headers and body) must arrive within a minute, 408 otherwise: Fastify's default
    // of none let a client trickling its body hold a connection for ever. Headers are small: 10 s
    // at most, which also closes a connection that sends nothing. Node checks a quarter as often.
    // An idle kept-alive connection closes after Fastify's keepAliveTimeout (72 s).
    requestTimeout,
    http: {
      headersTimeout,
      connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(requestTimeout / 4))),
      // Node's own refusal of a request without Host is a 400 with no body: the Host guard
      // refuses it instead, saying why, as it refuses two Host headers (host-guard.ts).
      requireHostHeader: false,
    },
    // Strict about percent-escapes: one that does not decode is refused, not kept as text.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH, querystringParser: parseQueryString },
    // No HEAD twin of every GET: a HEAD on a search or a get ran the whole read, and renewed the
    // TTLs of what it read, to send no body. HEAD is answered where it is cheap and useful, by
    // the probes (/healthz, /readyz); elsewhere it gets 405 naming GET.
    exposeHeadRoutes: false,
    // A URL that does not decode (a percent-escape of no UTF-8, such as a lone surrogate's
    // %ED%A0%80) is refused before routing: Fastify's own answer is its three-field shape with
    // only "Bad Request" in `error`.
    frameworkErrors: (error, request, reply) => {
      void (reply as FastifyReply).status(400).send({
        error:
          error.code === 'FST_ERR_BAD_URL'
            ? `the URL is not valid: a percent-escape in it decodes to no UTF-8 text (${request.url.slice(0, 200)})`
            : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
              ? // Fastify's message holds the whole URL: say which part, and its bound, instead.
                `a part of the URL (an id or key in its path) is over 256 characters: ids run to 128 (${request.url.slice(0, 200)}...)`
              : error.message.slice(0, 500),
      });
    },
    clientErrorHandler: clientErrorHandler(
      { requestTimeoutMs: requestTimeout, headersTimeoutMs: headersTimeout, maxHeaderBytes: maxHeaderSize },
      deps.log.child({ component: 'api' }),
    ),
    // Per-request logs at 1,000 turns/s drown the useful ones; errors are logged by errorHandler.
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request (an allocation on every hot-path call); errors are logged
    // with the request's method and URL by errorHandler instead of a request id.
    childLoggerFactory: (logger) => logger,
  });
  app.setErrorHandler(errorHandler);
  // The first request hook, before the not-found handler too: a foreign Host gets no further,
  // not even to authentication.
  registerHostGuard(app, deps.allowedHosts);
  guardPipelining(app);
  // Before authentication, as a path that does not decode is refused before routing.
  refuseUndecodedQueries(app);
  useZodSchemas(app);
  // A request in flight when close() begins is answered with `Connection: close`: kept alive,
  // its connection would hold close() for the keep-alive timeout (72 s), past the hard exit.
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  // By route pattern, never by URL: ids in paths would make a series each.
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    deps.metrics.httpSeconds.observe(
      { method: request.method, route, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    done();
  });
  // JSON only: a text/plain body would reach the schemas as a string and fail as "expected
  // object"; without its parser Fastify answers 415 and names the media type it got.
  app.removeContentTypeParser('text/plain');
  registerJsonBody(app);
  // The one error shape, { error }, for unknown routes too (Fastify's own has three fields), and
  // a known path asked with a method it does not answer is a 405 that names the ones it does.
  app.setNotFoundHandler(notFoundOrWrongMethod(trackRoutes(app, MAX_PARAM_LENGTH)));
  deps.tenancy.register(app);
  // Before any route: the document is made of the routes registered after it.
  await registerOpenApi(app, { keyed: deps.tenancy.keyed, adminPassword: !!deps.adminPassword });
  documentApiRoutes(app, deps.tenancy.keyed);
  registerRoutes(app, deps);
  registerStoreRoutes(app, deps.store, deps.tenancy, { requestTimeoutMs: requestTimeout });
  registerLifecycleRoutes(app, deps);
  registerToolRoutes(app, deps);
  registerMcpRoute(app, deps);

  app.get('/healthz', { schema: opsSchemas.healthz, exposeHeadRoute: true }, async () => ({ ok: true as const }));
  // Anyone may probe readiness: the answer names each check and its state, never the driver's
  // message (hosts, ports, connection strings); those are logged, once per change of state.
  const lastState = new Map<string, string>();
  app.get('/readyz', { schema: opsSchemas.readyz, exposeHeadRoute: true }, async (_request, reply) => {
    const checks: Record<string, 'ok' | 'timeout' | 'error'> = {};
    await Promise.all(
      Object.entries(deps.readiness).map(async ([name, check]) => {
        checks[name] = await withTimeout(check(), READY_TIMEOUT_MS).then(
          () => 'ok' as const,
          (err: unknown) => {
            const state = err instanceof TimeoutError ? 'timeout' : 'error';
            if (lastState.get(name) !== state) logger.warn({ err, check: name, state }, 'readiness check failed');
            return state;
          },
        );
        if (checks[name] === 'ok' && lastState.has(name) && lastState.get(name) !== 'ok')
          logger.info({ check: name }, 'readiness check passes again');
        lastState.set(name, checks[name]);
      }),
    );
    const ok = Object.values(checks).every((c) => c === 'ok');
    return reply.status(ok ? 200 : 503).send({ ok, checks });
  });
  registerMetricsRoute(app, deps.metrics, { schema: opsSchemas.metrics });

  const board = new FastifyAdapter();
  // Every shard's reflection queue (reflection, reflection-1...), then consolidation.
  createBullBoard({ queues: everyQueue(deps.queues).map((q) => new BullMQAdapter(q)), serverAdapter: board });
  board.setErrorHandler(boardErrorHandler(logger));
  board.setBasePath('/admin/queues');
  await app.register(async (admin) => {
    admin.addHook('onRoute', documentBoard(!!deps.adminPassword));
    if (deps.adminPassword) requireAdminPassword(admin, deps.adminPassword);
    boardSameOrigin(admin, '/admin/queues');
    boardRefusalsAsText(admin, '/admin/queues/');
    boardInputChecks(admin, '/admin/queues/api/');
    await admin.register(board.registerPlugin(), { prefix: '/admin/queues' });
    // In the same scope: the same password guards the memory browser. Its HTML pages are not
    // API routes: they stay out of the OpenAPI document, as Bull Board's do.
    admin.addHook('onRoute', (route) => {
      if (route.url.startsWith('/admin/memories')) route.schema = { ...route.schema, hide: true };
    });
    await admin.register(memoryBrowser({ ...deps, boardPath: '/admin/queues' }), { prefix: '/admin/memories' });
  });
  return app;
}
