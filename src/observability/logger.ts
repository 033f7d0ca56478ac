import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * The root logger. Every component takes a child with fixed fields (`component`, `queue`,
 * `jobId`, `threadId`, `namespace`) so that an operator can follow one thread through the logs.
 */
export function createLogger(options: { level: string; pretty?: boolean; name?: string }): Logger {
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
    return pino({ ...opts, transport: { target: 'pino-pretty', options: { colorize: true } } });
  }
  return pino(opts);
}
