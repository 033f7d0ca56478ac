import type { Env } from '../config/env.js';
import type { Logger } from '../log/logger.js';
import { OpenAIChatModel, type ChatModel } from './chat-model.js';
import { OpenAIEmbedder, type Embedder } from './embedder.js';
import { createOpenAI } from './openai.js';
import { defaultRetryPolicy, type RetryPolicy } from './retry.js';

/**
 * The chat model and the embedder from the environment. Each has its own endpoint settings
 * (base URL, key, timeout), so chat can run on one provider and embeddings on another; both
 * retry through retry.ts, never through the SDK's own loop.
 */
export function createModelClients(env: Env, log: Logger): { chat: ChatModel; embedder: Embedder; retry: RetryPolicy } {
  const retry: RetryPolicy = { maxRetries: env.LLM_MAX_RETRIES, baseDelayMs: env.LLM_RETRY_BASE_MS, maxDelayMs: env.LLM_RETRY_BASE_MS * 40 };
  const chatClient = createOpenAI({ baseURL: env.OPENAI_BASE_URL, apiKey: env.OPENAI_API_KEY, timeoutMs: env.LLM_TIMEOUT_MS, maxRetries: 0 });
  const embedder = createEmbedder(
    {
      baseURL: env.EMBEDDING_BASE_URL ?? env.OPENAI_BASE_URL,
      apiKey: env.EMBEDDING_API_KEY ?? env.OPENAI_API_KEY,
      timeoutMs: env.EMBEDDING_TIMEOUT_MS ?? env.LLM_TIMEOUT_MS,
      model: env.EMBEDDING_MODEL,
      dimensions: env.EMBEDDING_DIMENSIONS,
    },
    retry,
  );
  return { chat: new OpenAIChatModel(chatClient, env.CHAT_MODEL, log.child({ component: 'chat-model' }), retry), embedder, retry };
}

/** An embedder on its own endpoint (the service's, or an SDK client's): engram's retries, not the SDK's. */
export function createEmbedder(
  e: { baseURL?: string | undefined; apiKey: string; timeoutMs: number; model: string; dimensions: number },
  retry: RetryPolicy = defaultRetryPolicy,
): Embedder {
  const client = createOpenAI({ baseURL: e.baseURL, apiKey: e.apiKey, timeoutMs: e.timeoutMs, maxRetries: 0 });
  return new OpenAIEmbedder(client, e.model, e.dimensions, 512, retry);
}
