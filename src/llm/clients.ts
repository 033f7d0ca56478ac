import type { Env } from '../config/env.js';
import type { Logger } from '../observability/logger.js';
import { OpenAIChatModel, type ChatModel } from './chat-model.js';
import { createEmbedder, type Embedder } from './embedder.js';
import { createOpenAI } from './openai.js';
import { modelProbe, rateLimitProbe } from './probe.js';
import type { RetryPolicy } from './retry.js';

/**
 * The chat model and the embedder from the environment. Each has its own endpoint settings
 * (base URL, key, timeout), so chat can run on one provider and embeddings on another; both
 * retry through retry.ts, never through the SDK's own loop.
 */
export function createModelClients(
  env: Env,
  log: Logger,
): {
  chat: ChatModel;
  embedder: Embedder;
  retry: RetryPolicy;
  /** Whether each endpoint is there (probe.ts): tells an outage from a request's own failure. */
  probes: { chat: () => Promise<void>; embedding: () => Promise<void> };
  /** Whether each endpoint takes a request (probe.ts): tells a rate limit on all from one request's. */
  rateProbes: { chat: () => Promise<void>; embedding: () => Promise<void> };
} {
  const retry: RetryPolicy = {
    maxRetries: env.LLM_MAX_RETRIES,
    baseDelayMs: env.LLM_RETRY_BASE_MS,
    maxDelayMs: env.LLM_RETRY_BASE_MS * 40,
  };
  const chatEndpoint = { baseURL: env.OPENAI_BASE_URL, apiKey: env.OPENAI_API_KEY, timeoutMs: env.LLM_TIMEOUT_MS };
  const chatClient = createOpenAI(chatEndpoint);
  const embeddingEndpoint = {
    baseURL: env.EMBEDDING_BASE_URL ?? env.OPENAI_BASE_URL,
    apiKey: env.EMBEDDING_API_KEY ?? env.OPENAI_API_KEY,
    timeoutMs: env.EMBEDDING_TIMEOUT_MS ?? env.LLM_TIMEOUT_MS,
  };
  const embedder = createEmbedder(
    { ...embeddingEndpoint, model: env.EMBEDDING_MODEL, dimensions: env.EMBEDDING_DIMENSIONS },
    retry,
  );
  return {
    chat: new OpenAIChatModel(chatClient, env.CHAT_MODEL, log.child({ component: 'chat-model' }), retry),
    embedder,
    retry,
    probes: { chat: modelProbe(chatEndpoint), embedding: modelProbe(embeddingEndpoint) },
    rateProbes: {
      chat: rateLimitProbe(chatEndpoint, (c, options) =>
        c.chat.completions.create(
          { model: env.CHAT_MODEL, messages: [{ role: 'user', content: 'ping' }], max_completion_tokens: 1 },
          options,
        ),
      ),
      embedding: rateLimitProbe(embeddingEndpoint, (c, options) =>
        c.embeddings.create({ model: env.EMBEDDING_MODEL, input: 'ping', encoding_format: 'float' }, options),
      ),
    },
  };
}
