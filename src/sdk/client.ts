import type { Redis } from 'ioredis';
import { z } from 'zod';
import { InputError } from '../errors.js';
import { createEmbedder, type Embedder } from '../llm/embedder.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { defaultKinds, type MemoryKind } from '../memory/kinds.js';
import { Recall, type SearchInput } from '../memory/recall.js';
import { BUFFER_DEFAULTS, ThreadBuffer } from '../queue/buffer.js';
import { createRedis, waitReady } from '../queue/connection.js';
import { Producer, type EnqueueResult } from '../queue/enqueue.js';
import { createQueue, type EngramQueue } from '../queue/queues.js';
import type { EnqueueInput } from '../queue/schemas.js';
import type { Db } from '../store/db.js';
import { MemoryStore } from '../store/memory-store.js';
import { createPgDb } from '../store/pool.js';
import { fieldPathSchema } from '../store/schemas.js';
import { Store } from '../store/store.js';
import type { ScoredMemory } from '../store/types.js';
import { StoreClient } from './store-client.js';

export const clientOptionsSchema = z.strictObject({
  redisUrl: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
  /** Needed for `search` and `store` (or pass `db`); a producer that only enqueues may leave it out. */
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  /** The store API's defaults, as the service's STORE_* variables. */
  store: z
    .strictObject({
      indexFields: z.array(fieldPathSchema).min(1).default(['$']),
      defaultTtlMs: z.number().int().positive().nullable().default(null),
      /** Also for `search` (recall), like STORE_REFRESH_TTL_ON_READ in the service. */
      refreshTtlOnRead: z.boolean().default(true),
      actor: z.string().min(1).max(200).default('sdk'),
    })
    .prefault({}),
  prefix: z.string().min(1).default('engram'),
  schema: z.string().min(1).default('engram'),
  debounceMs: z.number().int().min(0).default(30_000),
  maxWaitMs: z.number().int().min(1).default(300_000),
  policy: z.enum(['enqueue', 'rollback']).default('enqueue'),
  /** How long each Redis round trip of `enqueue` may take on a stalled Redis before it rejects. */
  enqueueTimeoutMs: z.number().int().min(10).max(600_000).default(5_000),
  /**
   * The retry policy of the reflection jobs this client adds, as REFLECTION_ATTEMPTS and
   * REFLECTION_BACKOFF_MS (same defaults and bounds): BullMQ keeps it on each job, so give the
   * service's values if you changed them there.
   */
  reflectionAttempts: z.number().int().min(1).max(100).default(5),
  reflectionBackoffMs: z.number().int().min(0).default(5_000),
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
  /**
   * An open, migrated database instead of `databaseUrl`, such as an embedded PGlite
   * (`createPgliteDb`) in the process that also runs engram. The caller closes it.
   */
  db?: Db;
};

/**
 * The producer SDK. `enqueue` goes straight to Redis (no HTTP hop, no Postgres, no model);
 * `search` reads Postgres directly after one embedding call.
 */
export class EngramClient {
  private readonly redis: Redis;
  private readonly queue: EngramQueue<'reflection'>;
  private readonly producer: Producer;
  private readonly db: Db | null;
  private readonly ownsDb: boolean;
  private readonly recall: Recall | null;
  private readonly storeClient: StoreClient | null;

  constructor(options: EngramClientOptions) {
    const { kinds, embedder: customEmbedder, log: customLog, db, ...plain } = options;
    const parsed = clientOptionsSchema.safeParse(plain);
    if (!parsed.success) throw new InputError(`invalid engram client options: ${z.prettifyError(parsed.error)}`);
    const o = parsed.data;
    const log = customLog ?? createLogger({ level: 'warn' });
    this.redis = createRedis(o.redisUrl, 'producer', log);
    const buffer = new ThreadBuffer(this.redis, o.prefix, BUFFER_DEFAULTS);
    // Only the reflection queue: a producer adds nothing else, and an unused Queue left open
    // would outlive close().
    this.queue = createQueue(
      'reflection',
      this.redis,
      { prefix: o.prefix, reflectionAttempts: o.reflectionAttempts, reflectionBackoffMs: o.reflectionBackoffMs },
      log,
    );
    this.producer = new Producer(
      buffer,
      this.queue,
      {
        debounceMs: o.debounceMs,
        maxWaitMs: o.maxWaitMs,
        policy: o.policy,
        kinds: kinds ?? defaultKinds,
        timeoutMs: o.enqueueTimeoutMs,
      },
      log,
    );
    const embedder = customEmbedder ?? (o.embedding ? createEmbedder({ ...o.embedding, timeoutMs: 30_000 }) : null);
    this.ownsDb = !db && !!o.databaseUrl;
    this.db = db ?? (o.databaseUrl ? createPgDb(o.databaseUrl, 5, log) : null);
    const memories = this.db ? new MemoryStore(this.db, o.schema, log) : null;
    this.recall = memories && embedder ? new Recall(memories, embedder, o.store.refreshTtlOnRead) : null;
    this.storeClient = memories
      ? new StoreClient(
          new Store(memories, {
            embedder,
            indexFields: o.store.indexFields,
            defaultTtlMs: o.store.defaultTtlMs,
            refreshTtlOnRead: o.store.refreshTtlOnRead,
            defaultKind: 'memory',
            actor: o.store.actor,
            log,
          }),
        )
      : null;
  }

  /** Resolves once Redis is connected; enqueue before that fails fast. */
  ready(): Promise<void> {
    return waitReady(this.redis);
  }

  /** Buffers the turns and (re)schedules the thread's reflection. Redis only. */
  enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    return this.producer.enqueue(input);
  }

  /**
   * Memories of one namespace, most similar to `query` first. Async: without a database it
   * rejects, so a caller's `.catch` sees it, rather than throwing.
   */
  async search(input: SearchInput): Promise<ScoredMemory[]> {
    if (!this.recall)
      throw new InputError('search needs `databaseUrl` and `embedding` (or `embedder`) in the client options');
    return this.recall.search(input);
  }

  /**
   * The store API: put, get, delete, search, listNamespaces, batch, history. Needs `databaseUrl`
   * or `db`; searching by `query` and indexing also need `embedding` (or `embedder`).
   */
  get store(): StoreClient {
    if (!this.storeClient) throw new InputError('the store needs `databaseUrl` or `db` in the client options');
    return this.storeClient;
  }

  async close(): Promise<void> {
    await this.queue.close();
    await Promise.allSettled([this.redis.quit(), this.ownsDb ? this.db?.close() : undefined]);
  }
}
