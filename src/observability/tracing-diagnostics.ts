import { diag, DiagLogLevel, type DiagLogger } from '@opentelemetry/api';
import type { Logger } from './logger.js';
import { ThrottledWarnings } from './throttled-warning.js';

/** A collector that is down fails every batch (each 5 s): one line a minute per kind of failure. */
const WINDOW_MS = 60_000;

/**
 * Routes OpenTelemetry's own warnings and errors into the process' log. Without a diagnostic
 * logger the SDK says nothing: spans sent to a collector that is down, or to a wrong path (an
 * endpoint given with its `/v1/traces`, which engram appends again: a 404), were dropped without
 * a word while the log said `tracing on`.
 */
export function logTracingDiagnostics(log: Logger): void {
  const throttle = new ThrottledWarnings(WINDOW_MS);
  const tracingLog = log.child({ component: 'tracing' });
  const say = (message: string, ...args: unknown[]) => {
    const problem = [problemOf(String(message)), ...args.map(shown)].join(' ').slice(0, 1_000);
    // The same failure again is counted, not repeated.
    const heldBack = throttle.take(problem);
    if (heldBack === null) return;
    tracingLog.warn(
      { problem, heldBack },
      'OpenTelemetry reports a problem: spans may not reach the collector (OTEL_EXPORTER_OTLP_ENDPOINT)',
    );
  };
  const quiet = () => undefined;
  const logger: DiagLogger = { error: say, warn: say, info: quiet, debug: quiet, verbose: quiet };
  diag.setLogger(logger, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
}

/**
 * An export's failure comes as the error's fields in JSON, its stack first: its message and code
 * say it (`Not Found (404)`, `connect ECONNREFUSED 127.0.0.1:4318 (ECONNREFUSED)`).
 */
function problemOf(message: string): string {
  try {
    const e = JSON.parse(message) as { message?: unknown; code?: unknown };
    if (typeof e.message === 'string')
      return typeof e.code === 'string' || typeof e.code === 'number' ? `${e.message} (${e.code})` : e.message;
  } catch {
    // Not JSON: a diagnostic written as text.
  }
  return message;
}

/** An argument as text; never a throw (a circular object), which would land in the SDK's export path. */
function shown(arg: unknown): string {
  if (typeof arg === 'string') return arg;
  try {
    return JSON.stringify(arg) ?? String(arg);
  } catch {
    return String(arg);
  }
}
