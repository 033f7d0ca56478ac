import { createHash, timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../observability/logger.js';
import type { EngramQueues } from '../queue/queues.js';
import { QUEUE_NAMES } from '../queue/schemas.js';
import { withTimeout } from '../with-timeout.js';
import { memoryBrowser } from './admin/memory-browser.js';
import { errorHandler } from './errors.js';
import { registerJsonBody } from './json-body.js';
import { registerMcpRoute, type McpRouteDeps } from './mcp-route.js';
import { registerMetricsRoute } from './metrics-server.js';
import { registerRoutes, type ApiDeps } from './routes.js';
import { registerStoreRoutes } from './store-routes.js';
import { registerLifecycleRoutes, type LifecycleDeps } from './lifecycle-routes.js';
import type { StoreService } from '../store/store-service.js';

export interface ServerDeps extends ApiDeps, LifecycleDeps {
  store: StoreService;
  queues: EngramQueues;
  /** Dependency checks for /readyz; each resolves or throws. */
  readiness: Record<string, () => Promise<unknown>>;
  log: Logger;
  /** Basic-auth password for Bull Board (user `admin`); the board is open when unset. */
  adminPassword?: string | undefined;
  /** MCP at /mcp (mcp-route.ts): the kinds and embedder its tools write with; no /mcp when unset. */
  mcp?: McpRouteDeps['mcp'];
}

/** A probe must answer in time: a stalled dependency is not ready, whatever it says later. */
const READY_TIMEOUT_MS = 2_000;

/** Fastify: logs through the same pino logger, validates with zod in the handlers. */
export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  // Typed as Fastify's logger (see metrics-server.ts).
  const logger: FastifyBaseLogger = deps.log.child({ component: 'api' });
  const app = Fastify({
    loggerInstance: logger,
    bodyLimit: 4 * 1024 * 1024,
    // A request (headers and body) must arrive within a minute, 408 otherwise: Fastify's default
    // of none let a client trickling its body hold a connection for ever. Node checks every 30 s.
    requestTimeout: 60_000,
    // Thread ids run to 128 characters (LIMITS.idChars); Fastify's default of 100 answered 414
    // for 101-128. Twice that, so an id somewhat too long gets the schema's 400 naming the limit.
    routerOptions: { maxParamLength: 256 },
    // Per-request logs at 1,000 turns/s drown the useful ones; errors are logged by errorHandler.
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request (an allocation on every hot-path call); errors are logged
    // with the request's method and URL by errorHandler instead of a request id.
    childLoggerFactory: (logger) => logger,
  });
  app.setErrorHandler(errorHandler);
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
  // JSON only: a text/plain body would reach the schemas as a string and fail as "expected
  // object"; without its parser Fastify answers 415 and names the media type it got.
  app.removeContentTypeParser('text/plain');
  registerJsonBody(app);
  // The one error shape, { error }, for unknown routes too (Fastify's own has three fields).
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: `no route ${request.method} ${request.url.slice(0, 200)}` }),
  );
  deps.tenancy.register(app);
  registerRoutes(app, deps);
  registerStoreRoutes(app, deps.store, deps.tenancy);
  registerLifecycleRoutes(app, deps);
  registerMcpRoute(app, deps);

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_request, reply) => {
    const checks: Record<string, string> = {};
    await Promise.all(
      Object.entries(deps.readiness).map(async ([name, check]) => {
        checks[name] = await withTimeout(check(), READY_TIMEOUT_MS).then(
          () => 'ok',
          (err: Error) => `error: ${err.message}`,
        );
      }),
    );
    const ok = Object.values(checks).every((c) => c === 'ok');
    return reply.status(ok ? 200 : 503).send({ ok, checks });
  });
  registerMetricsRoute(app, deps.metrics);

  const board = new FastifyAdapter();
  createBullBoard({ queues: QUEUE_NAMES.map((name) => new BullMQAdapter(deps.queues[name])), serverAdapter: board });
  board.setBasePath('/admin/queues');
  await app.register(async (admin) => {
    if (deps.adminPassword) {
      const expected = createHash('sha256')
        .update(`Basic ${Buffer.from(`admin:${deps.adminPassword}`).toString('base64')}`)
        .digest();
      admin.addHook('onRequest', async (request, reply) => {
        // Compared as digests in constant time: the time taken says nothing about the password.
        const given = createHash('sha256')
          .update(request.headers.authorization ?? '')
          .digest();
        if (!timingSafeEqual(given, expected)) {
          return reply
            .status(401)
            .header('www-authenticate', 'Basic realm="engram admin"')
            .send({ error: 'authentication required' });
        }
      });
    }
    await admin.register(board.registerPlugin(), { prefix: '/admin/queues' });
    // In the same scope: the same password guards the memory browser.
    await admin.register(memoryBrowser({ ...deps, boardPath: '/admin/queues' }), { prefix: '/admin/memories' });
  });
  return app;
}
