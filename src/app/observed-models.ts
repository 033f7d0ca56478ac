import type { ChatModel } from '../llm/chat-model.js';
import type { Embedder } from '../llm/embedder.js';
import { instrumented } from '../observability/instrument.js';
import type { Metrics } from '../observability/metrics.js';
import { traced } from '../observability/tracing.js';

/** The model clients, each call timed in `engram_model_request_duration_seconds` and, with tracing on, a span. */
export function observedModels(
  models: { chat: ChatModel; embedder: Embedder },
  metrics: Metrics,
  tracing: boolean,
): { chat: ChatModel; embedder: Embedder } {
  let chat = instrumented(models.chat, 'complete', metrics.modelSeconds, { model: 'chat' });
  let embedder = instrumented(models.embedder, 'embed', metrics.modelSeconds, { model: 'embedding' });
  if (tracing) {
    chat = traced(chat, 'complete', 'engram.model.chat', (_r, [body]) => ({
      'engram.model.tools': ((body as { tools?: unknown[] }).tools ?? []).length,
    }));
    embedder = traced(embedder, 'embed', 'engram.model.embed', (_r, [texts]) => ({
      'engram.embed.texts': (texts as unknown[]).length,
    }));
  }
  return { chat, embedder };
}
