import type OpenAI from 'openai';
import { PermanentError, RetryableError } from '../errors.js';
import { createOpenAI } from './openai.js';
import { defaultRetryPolicy, withRetry, type RetryPolicy } from './retry.js';

/** Turns texts into vectors, one call per batch. Swappable (tests, local models). */
export interface Embedder {
  readonly dimensions: number;
  /** `onUsage` receives the tokens of each request made (for per-job accounting). */
  embed(
    texts: string[],
    signal?: AbortSignal,
    onUsage?: (promptTokens: number, model: string) => void,
  ): Promise<number[][]>;
}

/** Embeddings through the `openai` SDK: one request per batch, never one per text. */
export class OpenAIEmbedder implements Embedder {
  constructor(
    private readonly client: OpenAI,
    private readonly model: string,
    readonly dimensions: number,
    private readonly maxBatch = 512,
    /**
     * Retries here, never in the SDK (see retry.ts); none when omitted. The client's `timeout`
     * bounds each attempt as a whole, its answer's body included.
     */
    private readonly retry: RetryPolicy = { maxRetries: 0, baseDelayMs: 0, maxDelayMs: 0 },
  ) {}

  async embed(
    texts: string[],
    signal?: AbortSignal,
    onUsage?: (promptTokens: number, model: string) => void,
  ): Promise<number[][]> {
    const out: number[][] = [];
    for (let i = 0; i < texts.length; i += this.maxBatch) {
      const batch = texts.slice(i, i + this.maxBatch);
      const res = await withRetry(
        {
          what: `embedding model ${this.model}`,
          dependency: 'embedding-model',
          baseURL: this.client.baseURL,
          timeoutMs: this.client.timeout,
        },
        // maxRetries 0: see OpenAIChatModel.
        (within) =>
          this.client.embeddings.create(
            { model: this.model, input: batch, dimensions: this.dimensions, encoding_format: 'float' },
            { signal: within, maxRetries: 0 },
          ),
        this.retry,
        signal,
      ).catch((err: unknown) => {
        if (err instanceof PermanentError || err instanceof RetryableError || signal?.aborted) throw err;
        throw new RetryableError(`embedding request failed: ${(err as Error).message}`, { cause: err });
      });
      onUsage?.(res.usage?.prompt_tokens ?? 0, this.model);
      // Model output is untrusted input (invariant 7): check count, order and size.
      const sorted = [...res.data].sort((a, b) => a.index - b.index);
      if (sorted.length !== batch.length) {
        throw new RetryableError(`embedding model returned ${sorted.length} vectors for ${batch.length} texts`);
      }
      for (const d of sorted) {
        if (!Array.isArray(d.embedding) || d.embedding.length !== this.dimensions) {
          throw new PermanentError(
            `embedding model ${this.model} returned ${Array.isArray(d.embedding) ? d.embedding.length : typeof d.embedding} dimensions, ` +
              `EMBEDDING_DIMENSIONS is ${this.dimensions}`,
          );
        }
        out.push(d.embedding);
      }
    }
    return out;
  }
}

/**
 * An embedder on its own endpoint (the service's, or an SDK client's): engram's retries, not the
 * SDK's. Here rather than in clients.ts, so that the SDK client module (src/sdk/client.ts)
 * imports no chat-model code; the package's root export still re-exports the chat model.
 */
export function createEmbedder(
  e: { baseURL?: string | undefined; apiKey: string; timeoutMs: number; model: string; dimensions: number },
  retry: RetryPolicy = defaultRetryPolicy,
): Embedder {
  const client = createOpenAI({ baseURL: e.baseURL, apiKey: e.apiKey, timeoutMs: e.timeoutMs });
  return new OpenAIEmbedder(client, e.model, e.dimensions, 512, retry);
}
