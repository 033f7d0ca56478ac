import OpenAI from 'openai';
import type { Logger } from 'pino';
import { EngramClient } from '../../src/sdk/index.js';
import { buildChatApp } from './app.js';
import type { ChatConfig } from './config.js';

export interface RunningChat {
  /** Base URL, such as http://127.0.0.1:3001. */
  url: string;
  close(): Promise<void>;
}

/**
 * Builds the clients from the configuration and starts the chat server. In an application the
 * import is `engram/sdk`; this repository's example reads the same module from source.
 */
export async function startChat(
  config: ChatConfig,
  log: Logger,
  options: { tools?: boolean } = {},
): Promise<RunningChat> {
  const engram = new EngramClient({
    redisUrl: config.REDIS_URL,
    databaseUrl: config.DATABASE_URL,
    prefix: config.ENGRAM_PREFIX,
    schema: config.DATABASE_SCHEMA,
    embedding: {
      apiKey: config.EMBEDDING_API_KEY ?? config.OPENAI_API_KEY,
      baseURL: config.EMBEDDING_BASE_URL ?? config.OPENAI_BASE_URL,
      model: config.EMBEDDING_MODEL,
      dimensions: config.EMBEDDING_DIMENSIONS,
    },
    log: log.child({ component: 'engram-sdk' }),
  });
  // Fails now, with the SDK's own message, when no engram service has published its settings.
  await engram.connect();
  const openai = new OpenAI({ apiKey: config.OPENAI_API_KEY, baseURL: config.OPENAI_BASE_URL, timeout: 60_000 });
  const app = buildChatApp({
    engram,
    openai,
    model: config.CHAT_MODEL,
    instructionsRole: config.CHAT_INSTRUCTIONS_ROLE,
    log: log.child({ component: 'chat' }),
    tools: options.tools,
  });
  await app.listen({ host: config.HOST, port: config.CHAT_PORT }).catch(async (err: unknown) => {
    await engram.close();
    // The port is the one setting a newcomer trips on (engram's own PORT is 3000 beside it).
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE')
      throw new Error(`the chat example's port ${config.CHAT_PORT} is taken: set CHAT_PORT to a free one`, {
        cause: err,
      });
    throw err;
  });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.CHAT_PORT;
  return {
    url: `http://${config.HOST}:${port}`,
    async close() {
      await app.close();
      await engram.close();
    },
  };
}
