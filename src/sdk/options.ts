import { z } from 'zod';
import { crossCheck, sdkField, sdkShape } from '../config/settings.js';
import { kindRouteSchema } from '../core/kind-route.js';
import type { Db } from '../store/db.js';
import type { Embedder } from '../llm/embedder.js';
import type { Logger } from '../observability/logger.js';
import type { Reranker } from '../memory/recall.js';

/**
 * The client's options. Those it shares with the service are derived from the one definition of
 * each setting (config/settings.ts): same bounds, same defaults. Those the service publishes
 * (debounceMs, maxWaitMs, policy, reflectionAttempts, reflectionBackoffMs, kinds) have no default
 * here: the client reads them from Redis, and an option given here overrides the published value.
 */
export const clientOptionsSchema = z
  .strictObject({
    ...sdkShape(['redisUrl', 'databaseUrl', 'databaseReadUrl', 'prefix', 'schema', 'enqueueTimeoutMs']),
    /**
     * QUERY_EMBEDDING_TIMEOUT_MS: how long `recall`, `search` and a store search wait for their
     * query's embedding, retries included (a recall then ranks by text alone).
     */
    ...sdkShape(['queryEmbeddingTimeoutMs']),
    /**
     * REDIS_SHARDS: the service's published value when omitted (1 when none is published); one
     * that differs from it is refused, as producers that disagree would file a thread's turns in
     * one shard and its jobs' reads in another.
     */
    redisShards: sdkField('redisShards'),
    ...sdkShape(['debounceMs', 'maxWaitMs', 'policy', 'reflectionAttempts', 'reflectionBackoffMs']),
    /**
     * The kinds enqueue checks names and context against (a MemoryKind has these fields);
     * the service's published kinds when omitted.
     */
    kinds: z.array(kindRouteSchema).min(1).max(256).optional(),
    /** How often the client checks whether the service published other settings (one HGET). */
    settingsRefreshMs: z.number().int().min(100).max(3_600_000).default(10_000),
    /** The store API's defaults, as the service's STORE_* variables. */
    store: z
      .strictObject({
        ...sdkShape(['indexFields', 'defaultTtlMs', 'refreshTtlOnRead', 'answerMaxBytes']),
        actor: z.string().min(1).max(200).default('sdk'),
      })
      .prefault({}),
    embedding: z
      .strictObject({
        baseURL: sdkField('embeddingBaseUrl'),
        apiKey: z.string().min(1),
        model: sdkField('embeddingModel'),
        dimensions: sdkField('embeddingDimensions'),
      })
      .optional(),
  })
  .check(crossCheck((key) => key));
export type ClientOptions = z.output<typeof clientOptionsSchema>;

export type EngramClientOptions = z.input<typeof clientOptionsSchema> & {
  embedder?: Embedder;
  log?: Logger;
  /**
   * An open, migrated database instead of `databaseUrl`, such as an embedded PGlite
   * (`createPgliteDb`) in the process that also runs engram. The caller closes it.
   */
  db?: Db;
  /**
   * Reorders the candidates of `recall` and `search` (a cross-encoder, an LLM judge), best
   * first; it may drop some, and anything it returns that was not a candidate is left out.
   */
  rerank?: Reranker;
};
