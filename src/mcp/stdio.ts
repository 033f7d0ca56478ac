import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { Runtime } from '../app/runtime.js';
import { parseEnv, type Env } from '../config/env.js';
import { coerceError, InputError } from '../errors.js';
import { createLogger } from '../observability/logger.js';
import type { EnqueueParsed } from '../queue/schemas.js';
import { EngramClient } from '../sdk/client.js';
import { checkDimensions, checkMigrated } from '../store/migrate.js';
import { createMcpServer } from './server.js';
import { parseStdioArgs } from './session-config.js';

/**
 * `npm run start:mcp -- --context userId=u1`: an MCP server on stdin/stdout for a desktop agent,
 * with the service's environment (REDIS_URL, DATABASE_URL, ENGRAM_PREFIX, DATABASE_SCHEMA, the
 * embedding endpoint, ENGRAM_KINDS_FILE). It runs no role: the service's processes reflect and
 * publish settings; this one recalls, searches, writes through the store and enqueues, like the
 * SDK. Logs go to stderr, stdout being the protocol. Exits when stdin closes or on a signal.
 */
export async function runStdioServer(argv: string[]): Promise<void> {
  let env: Env;
  let session: ReturnType<typeof parseStdioArgs>;
  try {
    env = parseEnv();
    session = parseStdioArgs(argv);
  } catch (err) {
    process.stderr.write(`engram mcp: ${coerceError(err).message}\n`);
    process.exit(1);
  }
  const log = createLogger({ level: env.LOG_LEVEL, pretty: env.LOG_PRETTY, fd: 2 }).child({ process: 'mcp' });
  let runtime: Runtime | null = null;
  // Enqueues with the settings the service published (debounce, kinds...), as any producer does.
  const producer = new EngramClient({
    redisUrl: env.REDIS_URL as string,
    prefix: env.ENGRAM_PREFIX,
    enqueueTimeoutMs: env.ENQUEUE_TIMEOUT_MS,
    log: log.child({ component: 'producer' }),
  });
  const stop = async (code: number) => {
    await Promise.allSettled([runtime?.stop(), producer.close()]);
    process.exit(code);
  };
  try {
    runtime = new Runtime(env, log);
    await checkDimensions(runtime.db, env.DATABASE_SCHEMA, env.EMBEDDING_DIMENSIONS);
    await checkMigrated(runtime.db, env.DATABASE_SCHEMA);
    const { recall, store: memories, embedder, kinds } = runtime;
    const enqueue = (input: EnqueueParsed) => producer.enqueue(input);
    const server = createMcpServer({ recall, enqueue, memories, embedder, kinds, log }, session);
    const transport = new StdioServerTransport();
    transport.onclose = () => void stop(0);
    process.stdin.on('end', () => void stop(0));
    for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => void stop(0));
    await server.connect(transport);
    log.info({ context: session.context, threadId: session.threadId }, 'engram MCP server on stdio');
  } catch (err) {
    const e = coerceError(err);
    // A caller's mistake is said once, plainly; anything else is logged with its stack.
    if (!(e instanceof InputError)) log.fatal({ err: e }, e.message);
    process.stderr.write(`engram mcp: ${e.message}\n`);
    await stop(1);
  }
}
