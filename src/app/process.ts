import { parseEnv, type Env } from '../config/env.js';
import { postgresUnavailable } from '../dependency-errors.js';
import { coerceError, PermanentError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import { startTracing, type Tracing } from '../observability/tracing.js';
import { startEmbeddedRedis, type EmbeddedRedis } from './embedded-redis.js';
import { exitAfterOutput } from './exit-after-output.js';
import { Runtime, type Role, type RuntimeOptions } from './runtime.js';

export interface ProcessOptions extends RuntimeOptions {
  /** Apply migrations before starting (the all-in-one default; split deployments run `migrate`). */
  migrate?: boolean;
  /** How long SIGTERM waits for active jobs before the process exits anyway. */
  shutdownGraceMs?: number;
}

/**
 * A process entry: parse the environment once (exit 1 naming every bad variable), start the
 * roles, and on SIGTERM/SIGINT drain (active jobs finish), then exit; a second signal or the
 * grace period ending exits at once, and BullMQ's stalled-job check hands the jobs to others.
 */
export async function runProcess(name: string, roles: Role[], options: ProcessOptions = {}): Promise<Runtime> {
  let env: Env;
  try {
    env = parseEnv();
  } catch (err) {
    process.stderr.write(`engram ${name}: ${coerceError(err).message}\n`);
    return exitAfterOutput(1);
  }
  const log = createLogger({ level: env.LOG_LEVEL, pretty: env.LOG_PRETTY }).child({ process: name });
  let embedded: EmbeddedRedis | null = null;
  let runtime: Runtime | undefined;
  // Before anything that makes spans; nothing is loaded when OTEL_EXPORTER_OTLP_ENDPOINT is unset.
  let tracing: Tracing | null = null;
  try {
    tracing = await startTracing(
      { endpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT, serviceName: env.OTEL_SERVICE_NAME ?? `engram-${name}` },
      log,
    );
  } catch (err) {
    log.error({ err: coerceError(err) }, 'tracing could not start; running without it');
  }
  if (!env.REDIS_URL) {
    if (roles.length < 3) {
      process.stderr.write(
        `engram ${name}: REDIS_URL is required (only the all-in-one process starts its own Redis)\n`,
      );
      return exitAfterOutput(1);
    }
    try {
      // Exit rather than restart it: the process and its Redis are one unit to a supervisor
      // (compose's restart policy, systemd), which starts both again and Redis replays its AOF;
      // a process left running on a dead Redis answers 503s and holds its jobs until SIGTERM's
      // grace runs out. A bounded stop first, so active reflections are aborted, not cut.
      embedded = await startEmbeddedRedis(env.ENGRAM_DATA_DIR, log, (exit) => {
        log.fatal(exit, 'the embedded redis-server exited: stopping engram (restart it to start both again)');
        setTimeout(() => process.exit(1), 2_000).unref();
        void (runtime?.stop() ?? Promise.resolve()).finally(() => process.exit(1));
      });
    } catch (err) {
      process.stderr.write(`engram ${name}: ${coerceError(err).message}\n`);
      return exitAfterOutput(1);
    }
    env = { ...env, REDIS_URL: embedded.url };
  }
  try {
    runtime = new Runtime(env, log, options);
  } catch (err) {
    // Such as a PGlite data folder that another process holds.
    log.fatal({ err: coerceError(err) }, coerceError(err).message);
    await embedded?.stop();
    process.exit(1);
  }
  const stopAll = async () => {
    await runtime.stop();
    await embedded?.stop();
    // Flushes the spans still buffered.
    await tracing?.shutdown().catch((err: unknown) => log.warn({ err }, 'tracing did not flush'));
  };
  // Past the workers' own grace (after which they abort and hand jobs back), a hard stop.
  const grace = options.shutdownGraceMs ?? env.SHUTDOWN_GRACE_MS + 10_000;
  let signals = 0;
  const shutdown = (signal: string) => {
    signals++;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    // graceMs is the workers' own (SHUTDOWN_GRACE_MS); hardExitMs the stop past it.
    log.info({ signal, graceMs: env.SHUTDOWN_GRACE_MS, hardExitMs: grace }, 'shutting down');
    setTimeout(() => {
      log.error('shutdown grace period over: exiting with jobs still active');
      process.exit(1);
    }, grace).unref();
    void stopAll().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (reason) => log.error({ err: coerceError(reason) }, 'unhandled rejection'));

  try {
    if (options.migrate) await runtime.migrate();
    await runtime.start(roles);
  } catch (err) {
    const e = coerceError(err);
    log.fatal({ err: e }, startFailure(e));
    await stopAll();
    process.exit(1);
  }
  return runtime;
}

/**
 * The line an operator reads when a process cannot start, through a pipe or a supervisor's log.
 * A Postgres out of reach at start ends the process (unlike Redis, which it waits for: the
 * schema checks run once), so say which dependency and what to do, not only the driver's words.
 */
function startFailure(e: Error): string {
  if (e instanceof PermanentError) return e.message;
  if (postgresUnavailable(e))
    return `engram failed to start: Postgres is not reachable at DATABASE_URL (${e.message}); start it or fix DATABASE_URL, then start engram again`;
  return `engram failed to start: ${e.message}`;
}
