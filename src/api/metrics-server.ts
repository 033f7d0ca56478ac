import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Metrics } from '../observability/metrics.js';
import type { Logger } from '../observability/logger.js';

/** `GET /metrics` in Prometheus' text format, on the API or on a worker's own listener. */
export function registerMetricsRoute(app: FastifyInstance, metrics: Metrics): void {
  app.get('/metrics', async (_request, reply) => {
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
    disableRequestLogging: true,
  });
  registerMetricsRoute(app, metrics);
  app.get('/healthz', async () => ({ ok: true }));
  return app;
}
