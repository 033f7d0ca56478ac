import type OpenAI from 'openai';
import { PermanentError, RetryableError } from '../errors.js';
import { embeddingsAnswer, embeddingVector, firstIssue, malformedAnswer, type RawAnswer } from './answers.js';
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
          this.client.embeddings
            .create(
              { model: this.model, input: batch, dimensions: this.dimensions, encoding_format: 'float' },
              { signal: within, maxRetries: 0 },
            )
            .withResponse(),
        this.retry,
        signal,
      ).catch((err: unknown) => {
        if (err instanceof PermanentError || err instanceof RetryableError || signal?.aborted) throw err;
        throw new RetryableError(`embedding request failed: ${(err as Error).message}`, { cause: err });
      });
      out.push(
        ...this.vectors(
          batch.length,
          { body: res.data, contentType: res.response.headers.get('content-type') },
          onUsage,
        ),
      );
    }
    return out;
  }

  /**
   * The batch's vectors in the order of its texts, from an answer checked as untrusted input
   * (invariant 7): each text's vector once (the indices exactly 0 to n-1), each of the
   * configured size, each element a number pgvector can store. Sorted by index unchecked, two
   * entries of index 0 gave texts each other's vectors, and a null element was stored as 0.
   * A wrong size is permanent (EMBEDDING_DIMENSIONS and the model disagree: every retry would
   * get the same); any other fault is a bad answer, retryable, as a wrong count always was.
   */
  private vectors(
    texts: number,
    answer: RawAnswer,
    onUsage: ((promptTokens: number, model: string) => void) | undefined,
  ): number[][] {
    const where = `embedding model ${this.model} at ${this.client.baseURL}`;
    const parsed = embeddingsAnswer.safeParse(answer.body);
    if (!parsed.success) throw malformedAnswer(where, 'an embeddings list', answer, parsed.error);
    const { data, usage } = parsed.data;
    onUsage?.(usage?.prompt_tokens ?? 0, this.model);
    if (data.length !== texts) {
      throw new RetryableError(`${where}: returned ${data.length} vectors for ${texts} texts`);
    }
    const sorted = [...data].sort((a, b) => a.index - b.index);
    if (sorted.some((d, i) => d.index !== i)) {
      const indices = data.map((d) => d.index);
      const shown = indices.length > 10 ? `${indices.slice(0, 10).join(', ')}, ...` : indices.join(', ');
      throw new RetryableError(
        `${where}: returned the indices ${shown} for ${texts} texts, not each of 0 to ${texts - 1} once`,
      );
    }
    return sorted.map((d) => {
      if (!Array.isArray(d.embedding) || d.embedding.length !== this.dimensions) {
        throw new PermanentError(
          `${where}: returned ${Array.isArray(d.embedding) ? d.embedding.length : typeof d.embedding} dimensions, ` +
            `EMBEDDING_DIMENSIONS is ${this.dimensions}`,
        );
      }
      const vector = embeddingVector.safeParse(d.embedding);
      if (!vector.success) {
        throw new RetryableError(
          `${where}: returned a vector (index ${d.index}) whose element ${firstIssue(vector.error)}`,
        );
      }
      return vector.data;
    });
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
