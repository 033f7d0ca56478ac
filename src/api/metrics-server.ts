import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type RouteShorthandOptions,
} from 'fastify';
import type { Metrics } from '../observability/metrics.js';
import { errorHandler } from './errors.js';
import { notFoundOrWrongMethod, trackRoutes } from './method-not-allowed.js';
import type { Logger } from '../observability/logger.js';

/**
 * `GET /metrics` in Prometheus' text format, on the API or on a worker's own listener. `options`:
 * the API's documents the route (its zod schemas mean nothing to a worker's plain Fastify).
 */
export function registerMetricsRoute(
  app: FastifyInstance,
  metrics: Metrics,
  options: RouteShorthandOptions = {},
): void {
  app.get('/metrics', options, async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}

/**
 * For a process without the API (`start:reflection`, `start:scheduler`): its reflections,
 * merges and tokens are counted in its own registry, which only a listener of its own can show.
 */
export function buildMetricsServer(metrics: Metrics, log: Logger): FastifyInstance {
  // Typed as Fastify's logger, so that the instance is FastifyInstance's default (a pino Logger
  // would make it another generic instance, which the routes' types do not accept).
  const logger: FastifyBaseLogger = log.child({ component: 'metrics' });
  const app = Fastify({
    loggerInstance: logger,
    // A scrape every few seconds is not worth a log line.
    logController: new LogController({ disableRequestLogging: true }),
  });
  // The API's answers for what is not served, and for a failure: `{ error }`, 405 with `Allow`
  // for a wrong method, not Fastify's own three-field 404 for both.
  const allowed = trackRoutes(app, 100);
  app.setNotFoundHandler(notFoundOrWrongMethod(allowed));
  app.setErrorHandler(errorHandler);
  registerMetricsRoute(app, metrics);
  app.get('/healthz', async () => ({ ok: true }));
  return app;
}
