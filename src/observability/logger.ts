import { createRequire } from 'node:module';
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * The root logger. Every component takes a child with fixed fields (`component`, `queue`,
 * `jobId`, `threadId`, `namespace`) so that an operator can follow one thread through the logs.
 */
export function createLogger(options: {
  level: string;
  pretty?: boolean;
  name?: string;
  /** Where the lines go: stdout (1, the default), or stderr (2: a stdio MCP server's stdout is its protocol). */
  fd?: 1 | 2;
}): Logger {
  const fd = options.fd ?? 1;
  const opts: LoggerOptions = {
    level: options.level,
    name: options.name ?? 'engram',
    base: { pid: process.pid },
    // Never log credentials that may sit in connection strings or headers.
    redact: {
      paths: ['*.apiKey', '*.password', 'req.headers.authorization', 'req.headers["x-api-key"]'],
      censor: '[redacted]',
    },
    serializers: { err: (err: Error) => withoutCommandArgs(pino.stdSerializers.errWithCause(err)) },
  };
  if (options.pretty && prettyInstalled()) {
    return pino({ ...opts, transport: { target: 'pino-pretty', options: { colorize: true, destination: fd } } });
  }
  const log = fd === 1 ? pino(opts) : pino(opts, pino.destination(fd));
  if (options.pretty)
    log.warn(
      'LOG_PRETTY is set, but pino-pretty is not installed (a development dependency, which a production install omits): logging JSON; install pino-pretty beside engram for readable lines',
    );
  return log;
}

/**
 * ioredis puts the failed command on a Redis error, arguments and all: an append refused by a
 * full Redis (OOM) or a replica (READONLY) logged the turn's text and context, and the script's
 * 5 KB of Lua, in every such line. The command's name and argument count stay, for the error and
 * every error under it: its cause, a refused MULTI's `previousErrors` (one per queued command:
 * an erase's key names, the published settings) and an AggregateError's `aggregateErrors`.
 */
function withoutCommandArgs<T>(serialized: T, depth = 0): T {
  if (!serialized || typeof serialized !== 'object' || depth > 8) return serialized;
  const e = serialized as Record<string, unknown> & { command?: { name?: unknown; args?: unknown } };
  const changed: Record<string, unknown> = {};
  if (e.command && typeof e.command === 'object' && 'args' in e.command) {
    const { args } = e.command;
    changed.command = {
      name: e.command.name,
      args: `${Array.isArray(args) ? args.length : 'its'} arguments, left out of the log`,
    };
  }
  const cause = withoutCommandArgs(e.cause, depth + 1);
  if (cause !== e.cause) changed.cause = cause;
  for (const list of ['previousErrors', 'aggregateErrors'] as const) {
    const errors = e[list];
    if (!Array.isArray(errors)) continue;
    const shown = errors.map((x: unknown) => withoutCommandArgs(x, depth + 1));
    if (shown.some((x, i) => x !== errors[i])) changed[list] = shown;
  }
  // A copy: what was logged may be the caller's own object.
  if (!Object.keys(changed).length) return serialized;
  // An error nested in a list is not serialized by pino: its message is not an own enumerable
  // property, and a spread would drop it.
  const named = serialized instanceof Error ? { type: serialized.name, message: serialized.message } : {};
  return { ...named, ...e, ...changed } as T;
}

/** Whether pino-pretty resolves from here: pino's transport would otherwise throw at start. */
function prettyInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}
