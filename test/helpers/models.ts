import { OpenAIChatModel } from '../../src/llm/chat-model.js';
import { OpenAIEmbedder } from '../../src/llm/embedder.js';
import { createOpenAI } from '../../src/llm/openai.js';
import type { RetryPolicy } from '../../src/llm/retry.js';
import { createLogger } from '../../src/observability/logger.js';
import type { FakeModel } from '../fake-model/server.js';
import { TEST_DIMENSIONS } from './harness.js';

export const silentLog = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
export const noRetry: RetryPolicy = { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 1_000 };

/** The product's chat model over HTTP to the fake: the real openai SDK path. */
export function chatModelFor(model: FakeModel, opts: { retry?: RetryPolicy; timeoutMs?: number } = {}) {
  const client = createOpenAI({ baseURL: model.url, apiKey: 'test-key', timeoutMs: opts.timeoutMs ?? 5_000 });
  return new OpenAIChatModel(client, 'fake-chat', silentLog, opts.retry ?? noRetry);
}

export function embedderFor(model: FakeModel, retry: RetryPolicy = noRetry) {
  const client = createOpenAI({ baseURL: model.url, apiKey: 'test-key', timeoutMs: 5_000 });
  return new OpenAIEmbedder(client, 'fake-embedding', TEST_DIMENSIONS, 512, retry);
}
