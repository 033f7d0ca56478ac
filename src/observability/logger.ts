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
    serializers: { err: pino.stdSerializers.errWithCause },
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

/** Whether pino-pretty resolves from here: pino's transport would otherwise throw at start. */
function prettyInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}
