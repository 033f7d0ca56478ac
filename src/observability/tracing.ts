import { propagation, ROOT_CONTEXT, SpanStatusCode, trace, type Span, type SpanContext } from '@opentelemetry/api';
import type { NodeSDKConfiguration } from '@opentelemetry/sdk-node';
import { withoutCredentials } from '../core/url-credentials.js';
import type { Logger } from './logger.js';
import { logTracingDiagnostics } from './tracing-diagnostics.js';

type SpanProcessor = NonNullable<NodeSDKConfiguration['spanProcessors']>[number];

/** engram's own spans; a no-op tracer until an SDK is started (startTracing). */
export const tracer = () => trace.getTracer('engram');

export interface Tracing {
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry SDK: OTLP over HTTP to `endpoint` (OTEL_EXPORTER_OTLP_ENDPOINT), or
 * the given span processors (tests read spans with an in-memory exporter). Neither: nothing is
 * loaded, the API's tracer stays a no-op and engram wires no tracing in (zero cost when off).
 * The SDK is imported here only, on demand: it is large, and most processes never need it.
 */
export async function startTracing(
  opts: { endpoint?: string | undefined; serviceName: string; spanProcessors?: SpanProcessor[] },
  log: Logger,
): Promise<Tracing | null> {
  if (!opts.endpoint && !opts.spanProcessors?.length) return null;
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  let spanProcessors = opts.spanProcessors;
  if (!spanProcessors?.length) {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    const { tracing } = await import('@opentelemetry/sdk-node');
    const url = `${(opts.endpoint as string).replace(/\/$/, '')}/v1/traces`;
    spanProcessors = [new tracing.BatchSpanProcessor(new OTLPTraceExporter({ url }))];
  }
  // No auto-instrumentation: engram's spans and BullMQ's (bullmq-otel) say what happened to a
  // turn; patching every module (http, pg, ioredis) would multiply spans and start-up time.
  logTracingDiagnostics(log);
  const sdk = new NodeSDK({ serviceName: opts.serviceName, spanProcessors, instrumentations: [] });
  sdk.start();
  log.info({ endpoint: opts.endpoint && withoutCredentials(opts.endpoint) }, 'tracing on');
  return { shutdown: () => sdk.shutdown() };
}

/** Runs `work` in a new active span named `name`, ending it with the outcome. */
export async function inSpan<T>(
  name: string,
  attributes: Record<string, string | number | boolean>,
  work: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message?.slice(0, 200) });
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * `target`, with each call of `method` in a span named `name` (the composition root wraps the
 * model clients and the store's commit so, only when tracing is on). `describe` adds the
 * result's attributes, such as the memories a commit changed.
 */
export function traced<T extends object, K extends keyof T>(
  target: T,
  method: K,
  name: string,
  describe?: (result: unknown, args: unknown[]) => Record<string, string | number | boolean | string[]>,
): T {
  const original = target[method] as unknown as (...args: unknown[]) => Promise<unknown>;
  const wrapped = (...args: unknown[]) =>
    inSpan(name, {}, async (span) => {
      const result = await original.apply(target, args);
      if (describe) span.setAttributes(describe(result, args));
      return result;
    });
  return new Proxy(target, {
    get(t, key) {
      if (key === method) return wrapped;
      const value = Reflect.get(t, key, t) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value;
    },
  });
}

/** The span context BullMQ's telemetry stored in a job's options (W3C trace context), if any. */
export function jobSpanContext(metadata: string | undefined): SpanContext | null {
  if (!metadata) return null;
  try {
    const carrier = JSON.parse(metadata) as Record<string, string>;
    return trace.getSpanContext(propagation.extract(ROOT_CONTEXT, carrier)) ?? null;
  } catch {
    return null;
  }
}
