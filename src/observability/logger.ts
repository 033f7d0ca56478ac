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
  if (options.pretty) {
    return pino({ ...opts, transport: { target: 'pino-pretty', options: { colorize: true, destination: fd } } });
  }
  return fd === 1 ? pino(opts) : pino(opts, pino.destination(fd));
}
