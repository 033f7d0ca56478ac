import { UnavailableError } from '../errors.js';

/**
 * How long a read (recall, search) waits for its query's embedding, retries included. Memory is
 * an aid on a chat's hot path, not a dependency: an embedding endpoint that accepted the
 * connection and never answered held a recall for the request timeout times its attempts (4 x
 * 60 s over HTTP at the defaults, 4 x 30 s in the SDK). Formation's embeddings are not reads and
 * keep the endpoint's own timeout and retries.
 */
export interface QueryDeadline {
  ms: number;
  /** The embedding model, named in the error. */
  model: string;
  /** The setting behind `ms` as its reader spells it: QUERY_EMBEDDING_TIMEOUT_MS, queryEmbeddingTimeoutMs. */
  setting: string;
}

/**
 * `embed`, given a signal that ends at the deadline or with the caller's, whichever comes first.
 * The deadline passed is an UnavailableError of the embedding model (a recall then ranks by
 * text); the caller's own signal rejects with its reason, as before. The retries stay within it:
 * the signal ends the request in flight and the backoff's sleep alike (llm/retry.ts). Raced as
 * well, so that an embedder that ignores its signal (an application's own) cannot hold the read
 * past the deadline either.
 */
export async function embedWithin<T>(
  deadline: QueryDeadline | undefined,
  signal: AbortSignal | undefined,
  embed: (signal: AbortSignal | undefined) => Promise<T>,
): Promise<T> {
  if (!deadline) return embed(signal);
  const expiry = new AbortController();
  const late = (cause?: unknown) =>
    new UnavailableError(
      'embedding-model',
      `embedding model ${deadline.model} did not embed the query within ${deadline.ms} ms (${deadline.setting})`,
      cause === undefined ? undefined : { cause },
    );
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = late();
      expiry.abort(err);
      reject(err);
    }, deadline.ms);
  });
  try {
    return await Promise.race([embed(signal ? AbortSignal.any([signal, expiry.signal]) : expiry.signal), expired]);
  } catch (err) {
    if (!expiry.signal.aborted || signal?.aborted || err === expiry.signal.reason) throw err;
    // The embedder's own error for the abort (an OpenAI APIUserAbortError, say): what it was is kept as the cause.
    throw late(err);
  } finally {
    clearTimeout(timer);
  }
}
