import type { Redis } from 'ioredis';
import type pg from 'pg';
import { z } from 'zod';
import { InputError } from '../errors.js';
import { OpenAIEmbedder, type Embedder } from '../llm/embedder.js';
import { createOpenAI } from '../llm/openai.js';
import { createLogger, type Logger } from '../log/logger.js';
import { defaultKinds, type MemoryKind } from '../memory/kinds.js';
import { Recall, type SearchInput } from '../memory/recall.js';
import { ThreadBuffer } from '../queue/buffer.js';
import { createRedis, waitReady } from '../queue/connection.js';
import { Producer, type EnqueueResult } from '../queue/enqueue.js';
import { createQueues, type EngramQueue } from '../queue/queues.js';
import type { EnqueueInput } from '../queue/schemas.js';
import { MemoryStore } from '../store/memory-store.js';
import { createPool } from '../store/pool.js';
import type { ScoredMemory } from '../store/types.js';

export const clientOptionsSchema = z.strictObject({
  redisUrl: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
  /** Needed for `search`; a producer that only enqueues may leave it out. */
  databaseUrl: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  prefix: z.string().min(1).default('engram'),
  schema: z.string().min(1).default('engram'),
  debounceMs: z.number().int().min(0).default(30_000),
  maxWaitMs: z.number().int().min(1).default(300_000),
  policy: z.enum(['enqueue', 'rollback']).default('enqueue'),
  embedding: z
    .strictObject({
      baseURL: z.string().optional(),
      apiKey: z.string().min(1),
      model: z.string().min(1).default('text-embedding-3-small'),
      dimensions: z.number().int().positive().default(1536),
    })
    .optional(),
});
export type EngramClientOptions = z.input<typeof clientOptionsSchema> & {
  /** Must match the service's kinds, so that enqueue can check kind names and context at once. */
  kinds?: MemoryKind[];
  embedder?: Embedder;
  log?: Logger;
};

/**
 * The producer SDK. `enqueue` goes straight to Redis (no HTTP hop, no Postgres, no model);
 * `search` reads Postgres directly after one embedding call.
 */
export class EngramClient {
  private readonly redis: Redis;
  private readonly queue: EngramQueue<'reflection'>;
  private readonly producer: Producer;
  private readonly pool: pg.Pool | null;
  private readonly recall: Recall | null;

  constructor(options: EngramClientOptions) {
    const { kinds, embedder: customEmbedder, log: customLog, ...plain } = options;
    const parsed = clientOptionsSchema.safeParse(plain);
    if (!parsed.success) throw new InputError(`invalid engram client options: ${z.prettifyError(parsed.error)}`);
    const o = parsed.data;
    const log = customLog ?? createLogger({ level: 'warn' });
    this.redis = createRedis(o.redisUrl, 'producer', log);
    const buffer = new ThreadBuffer(this.redis, o.prefix, { dedupeWindowMs: 24 * 3600_000, idleTtlMs: 7 * 24 * 3600_000 });
    this.queue = createQueues(this.redis, { prefix: o.prefix, reflectionAttempts: 5 }, log).reflection;
    this.producer = new Producer(buffer, this.queue, { debounceMs: o.debounceMs, maxWaitMs: o.maxWaitMs, policy: o.policy, kinds: kinds ?? defaultKinds }, log);
    const embedder =
      customEmbedder ??
      (o.embedding
        ? new OpenAIEmbedder(createOpenAI({ baseURL: o.embedding.baseURL, apiKey: o.embedding.apiKey, timeoutMs: 30_000, maxRetries: 2 }), o.embedding.model, o.embedding.dimensions)
        : null);
    this.pool = o.databaseUrl ? createPool(o.databaseUrl, 5, log) : null;
    this.recall = this.pool && embedder ? new Recall(new MemoryStore(this.pool, o.schema, log), embedder) : null;
  }

  /** Resolves once Redis is connected; enqueue before that fails fast. */
  ready(): Promise<void> {
    return waitReady(this.redis);
  }

  /** Buffers the turns and (re)schedules the thread's reflection. Redis only. */
  enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    return this.producer.enqueue(input);
  }

  /** Memories of one namespace, most similar to `query` first. */
  search(input: SearchInput): Promise<ScoredMemory[]> {
    if (!this.recall) throw new InputError('search needs `databaseUrl` and `embedding` (or `embedder`) in the client options');
    return this.recall.search(input);
  }

  async close(): Promise<void> {
    await this.queue.close();
    await Promise.allSettled([this.redis.quit(), this.pool?.end()]);
  }
}
