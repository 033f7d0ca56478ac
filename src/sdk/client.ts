import type { RedisClient } from '../queue/connection.js';
import { z } from 'zod';
import { readPublication, readVersion, type Publication } from '../config/published-settings.js';
import { InputError, PermanentError, UnavailableError } from '../errors.js';
import { createEmbedder, type Embedder } from '../llm/embedder.js';
import type { KindRoute } from '../core/kind-route.js';
import { Eraser, type EraseInput, type EraseResult } from '../memory/erase.js';
import { Recall, type RecallInput, type RecallResult, type SearchInput } from '../memory/recall.js';
import { createLogger, type Logger } from '../observability/logger.js';
import { BUFFER_DEFAULTS } from '../queue/buffer.js';
import { createRedis, waitReady } from '../queue/connection.js';
import { Producer, type EnqueueResult } from '../queue/enqueue.js';
import { createReflectionQueues, type EngramQueue, type QueueSettings } from '../queue/queues.js';
import { shardTags } from '../queue/shards.js';
import { ThreadBuffers } from '../queue/thread-buffers.js';
import type { EnqueueInput } from '../queue/schemas.js';
import type { Db } from '../store/db.js';
import { MemoryDb } from '../store/memory-db.js';
import { openReadDb } from '../store/open.js';
import { createPgDb } from '../store/pool.js';
import { StoreService, type CallOptions } from '../store/store-service.js';
import type { ScoredMemory } from '../store/types.js';
import type { MemoryToolsOptions } from '../tools/create-session.js';
import type { ToolSession } from '../tools/session.js';
import { connectAndRead } from './connect.js';
import { effectiveSettings, givenAll } from './effective-settings.js';
import { toSdkError, toSdkStoreError } from './errors.js';
import { sdkToolSession } from './memory-tools.js';
import { clientOptionsSchema, type ClientOptions, type EngramClientOptions } from './options.js';
import { StoreClient } from './store-client.js';
import { storeSizedEmbedder } from './store-sized-embedder.js';

export { clientOptionsSchema, type EngramClientOptions };

/** A read's own options: `signal` gives it up (its statement is cancelled on Postgres). */
export type ReadCallOptions = CallOptions;

/**
 * The producer SDK. `enqueue` goes straight to Redis (no HTTP hop, no Postgres, no model);
 * `search` reads Postgres directly after one embedding call. The client connects on first use
 * and runs with the settings the service published in Redis, except those given to it.
 */
export class EngramClient {
  private readonly o: ClientOptions;
  private readonly log: Logger;
  private readonly redis: RedisClient;
  /** Every shard's buffer and reflection queue, once connected (the service's REDIS_SHARDS). */
  private buffers: ThreadBuffers | null = null;
  private queues: EngramQueue<'reflection'>[] | null = null;
  /** What `queues` were made with, for an erase's own queues. */
  private queueSettings: QueueSettings | null = null;
  /** Set once connected: from then on an enqueue is the producer's call and nothing more. */
  private producer: Producer | null = null;
  private connecting: Promise<void> | null = null;
  /** The publication's version and the settings applied from it (what the poll compares). */
  private version: string | null = null;
  private applied = '';
  /** The retry policy of `queues`' jobs, and their shards. */
  private retry = '';
  private poller: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly db: Db | null;
  private readonly ownsDb: boolean;
  /** The read replicas' pools (`databaseReadUrl`): always the client's own. */
  private readonly readDb: Db | null;
  private readonly recaller: Recall | null;
  private readonly memories: MemoryDb | null;
  /** The kinds in effect (the service's published ones, or the client's own). */
  private kinds: readonly KindRoute[] = [];
  /** When reading the service's kinds for a store put last failed (0: never). */
  private kindsUnreadAt = 0;
  private readonly storeClient: StoreClient | null;
  private readonly tools: { memories: MemoryDb; embedder: Embedder } | null;

  constructor(options: EngramClientOptions) {
    const { embedder: customEmbedder, log: customLog, db, rerank, ...plain } = options;
    const parsed = clientOptionsSchema.safeParse(plain);
    if (!parsed.success)
      throw new InputError(`invalid engram client options: ${z.prettifyError(parsed.error)}`, parsed.error.issues);
    const o = (this.o = parsed.data);
    const log = (this.log = customLog ?? createLogger({ level: 'warn' }));
    // Lazy: a client that only searches never opens Redis, and none connects in a constructor.
    this.redis = createRedis(o.redisUrl, 'producer', log, { lazy: true });
    // 30 s a request, retried: a store put's indexing. A read's query gets queryEmbeddingTimeoutMs in all.
    const given = customEmbedder ?? (o.embedding ? createEmbedder({ ...o.embedding, timeoutMs: 30_000 }) : null);
    const queryDeadline = {
      ms: o.queryEmbeddingTimeoutMs,
      model: customEmbedder || !o.embedding ? "(the client's `embedder`)" : o.embedding.model,
      setting: 'queryEmbeddingTimeoutMs',
    };
    this.ownsDb = !db && !!o.databaseUrl;
    if (o.databaseReadUrl && !(db ? db.backend === 'postgres' : o.databaseUrl))
      throw new InputError(
        'invalid engram client options: `databaseReadUrl` needs `databaseUrl` (or a Postgres `db`): read replicas are of a Postgres primary, and PGlite has none',
      );
    this.db = db ?? (o.databaseUrl ? createPgDb(o.databaseUrl, 5, log) : null);
    this.readDb = this.db ? openReadDb(o.databaseReadUrl, this.db, 5, log) : null;
    const memories = (this.memories = this.db ? new MemoryDb(this.db, o.schema, log, undefined, this.readDb) : null);
    const embedder = given && this.db ? storeSizedEmbedder(given, this.db, o.schema) : given;
    this.tools = memories && embedder ? { memories, embedder } : null;
    this.recaller =
      memories && embedder
        ? new Recall(memories, embedder, o.store.refreshTtlOnRead, () => this.kinds, rerank, o.store.answerMaxBytes, {
            queryDeadline,
            log,
          })
        : null;
    this.storeClient = memories
      ? new StoreClient(
          new StoreService(memories, {
            embedder,
            indexFields: o.store.indexFields,
            defaultTtlMs: o.store.defaultTtlMs ?? null,
            refreshTtlOnRead: o.store.refreshTtlOnRead,
            answerMaxBytes: o.store.answerMaxBytes,
            queryDeadline,
            defaultKind: 'memory',
            kinds: () => this.storeKinds(),
            actor: o.store.actor,
            log,
          }),
          () => this.connect().then(() => this.kinds),
        )
      : null;
  }

  /**
   * The kinds a store put without a kind is matched against: the service's, read as recall reads
   * them (connecting first). A store used without a service (nothing published, or no Redis) has
   * none: its puts make `memory` items, as they always did, said once in the log.
   */
  private async storeKinds(): Promise<readonly KindRoute[]> {
    if (this.kinds.length || this.o.kinds) return this.kinds.length ? this.kinds : (this.o.kinds ?? []);
    // Asked again a minute later, not on every put: a Redis out of reach holds a connect for
    // enqueueTimeoutMs.
    if (Date.now() - this.kindsUnreadAt < 60_000) return [];
    try {
      await this.connect();
      return this.kinds;
    } catch (err) {
      if (!this.kindsUnreadAt)
        this.log.warn(
          { err },
          "store puts without a kind are `memory` items: the service's kinds could not be read (no service published them under this prefix, or Redis is out of reach)",
        );
      this.kindsUnreadAt = Date.now();
      return [];
    }
  }

  /**
   * Connects to Redis and reads the service's published settings, within `enqueueTimeoutMs`.
   * Optional: the first enqueue does it. Rejects with UnavailableError when Redis is out of reach
   * or no service has published settings under the client's prefix (unless the client was given
   * all of them); a later call tries again.
   */
  connect(): Promise<void> {
    if (this.producer) return Promise.resolve();
    if (this.closed) return Promise.reject(new PermanentError('the engram client is closed'));
    this.connecting ??= this.open().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  /** @deprecated `connect()`, which enqueue also does on first use. */
  ready(): Promise<void> {
    return this.connect();
  }

  /** Buffers the turns and (re)schedules the thread's reflection. Redis only: one round trip. */
  enqueue(input: EnqueueInput): Promise<EnqueueResult> {
    const producer = this.producer;
    if (producer) return producer.enqueue(input);
    return this.connect().then(() => this.enqueue(input));
  }

  /**
   * Memories of one namespace, most similar to `query` first. Async: without a database it
   * rejects, so a caller's `.catch` sees it, rather than throwing. `signal` stops the query's
   * embedding and cancels its statement on Postgres; the call then rejects with its reason. A
   * query not embedded within `queryEmbeddingTimeoutMs` rejects with UnavailableError.
   */
  async search(input: SearchInput, call: ReadCallOptions = {}): Promise<ScoredMemory[]> {
    if (!this.recaller)
      throw new InputError('search needs `databaseUrl` and `embedding` (or `embedder`) in the client options');
    try {
      return await this.recaller.search(input, call);
    } catch (err) {
      throw toSdkStoreError(err, call.signal);
    }
  }

  /**
   * What to put in the next prompt: the user's profiles and most relevant memories across the
   * kinds' namespaces, filled from `context` (hybrid ranking by default), cut to `limit` and
   * `tokenBudget`, with a prompt block. Reads the service's kinds, so it connects first. A query
   * not embedded within `queryEmbeddingTimeoutMs` is ranked by text alone (`degraded`).
   */
  async recall(input: RecallInput, call: ReadCallOptions = {}): Promise<RecallResult> {
    if (!this.recaller)
      throw new InputError('recall needs `databaseUrl` and `embedding` (or `embedder`) in the client options');
    await this.connect();
    try {
      return await this.recaller.recall(input, call);
    } catch (err) {
      // Connected already: Redis's own failures say so by their messages, a bare socket is Postgres.
      throw toSdkStoreError(err, call.signal);
    }
  }

  /**
   * Erases a user (`{ context }`: every namespace the service's kinds fill from it, and the
   * threads whose turns came with it, buffered turns and jobs included) or a namespace prefix,
   * for good, with a content-free audit row. Needs the database, and Redis for the threads.
   */
  async erase(input: EraseInput): Promise<EraseResult> {
    if (!this.memories) throw new InputError('erase needs `databaseUrl` or `db` in the client options');
    await this.connect();
    // A connection of its own with a command timeout, as the service's erase has: the client's
    // connection has none (the hot path's deadline is enqueue's own), and a stalled Redis held
    // an erase for as long as the stall lasted. An erase is rare: opened and closed per call.
    const redis = createRedis(this.o.redisUrl, 'producer', this.log, {
      commandTimeoutMs: this.o.enqueueTimeoutMs,
      name: 'erase',
    });
    const queues = createReflectionQueues(redis, this.queueSettings as QueueSettings, this.log);
    const eraser = new Eraser({
      store: this.memories,
      redis,
      buffers: this.buffers as ThreadBuffers,
      queues,
      kinds: () => this.kinds,
      log: this.log,
    });
    try {
      await waitReady(redis, { timeoutMs: this.o.enqueueTimeoutMs }).catch((err: unknown) => {
        throw new UnavailableError('redis', 'Redis was not ready in time for the erase; try again later', {
          cause: err,
        });
      });
      return await eraser.erase(input, this.o.store.actor);
    } catch (err) {
      throw toSdkError(err, 'postgres');
    } finally {
      await Promise.allSettled(queues.map((q) => q.close()));
      redis.disconnect();
    }
  }

  /**
   * Memory tools for an agent's own model (`manage_memory`, `search_memory`) over one context:
   * `tools` for a chat completion, `runToolCall` for each call the model makes. Writes go through
   * the store's writer, as reflections' do. Needs `databaseUrl` (or `db`) and `embedding` (or
   * `embedder`); see docs/memory-tools.md.
   */
  memoryTools(options: MemoryToolsOptions): ToolSession {
    if (!this.recaller || !this.tools)
      throw new InputError(
        'memory tools need `databaseUrl` (or `db`) and `embedding` (or `embedder`) in the client options',
      );
    const serviceKinds = () => this.connect().then(() => this.kinds);
    return sdkToolSession({ recall: this.recaller, ...this.tools, serviceKinds }, options);
  }

  /**
   * The store API: put, get, delete, search, listNamespaces, batch, history. Needs `databaseUrl`
   * or `db`; searching by `query` and indexing also need `embedding` (or `embedder`).
   */
  get store(): StoreClient {
    if (!this.storeClient) throw new InputError('the store needs `databaseUrl` or `db` in the client options');
    return this.storeClient;
  }

  /** Closes the connections it opened; a later call rejects with PermanentError. */
  async close(): Promise<void> {
    this.closed = true;
    this.producer = null;
    if (this.poller) clearInterval(this.poller);
    await Promise.all((this.queues ?? []).map((q) => q.close()));
    // quit() needs a live connection; disconnect() also stops a reconnect loop.
    const redis = this.redis.status === 'ready' ? this.redis.quit() : this.redis.disconnect();
    await Promise.allSettled([redis, this.ownsDb ? this.db?.close() : undefined, this.readDb?.close()]);
  }

  private async open(): Promise<void> {
    const readSettings = !givenAll(this.o);
    try {
      // Read even when every setting was given: the shards must agree with the service's.
      const publication = await connectAndRead(this.redis, this.o.prefix, this.o.enqueueTimeoutMs);
      if (this.closed) throw new PermanentError('the engram client was closed while it connected');
      this.apply(publication);
    } catch (err) {
      throw toSdkError(err);
    }
    if (readSettings) this.poll();
  }

  /** Builds the producer for these settings (queues too when the retry policy or the shards changed). */
  private apply(publication: Publication | null): void {
    this.version = publication?.version ?? null;
    const settings = effectiveSettings(this.o, publication);
    this.kinds = settings.kinds;
    const json = JSON.stringify(settings);
    if (json === this.applied && this.producer) return;
    const { reflectionAttempts, reflectionBackoffMs, redisShards: shards = 1 } = settings;
    const retry = `${reflectionAttempts}:${reflectionBackoffMs}:${shards}`;
    const previous = this.queues;
    // BullMQ puts the queue's default job options, the retry policy, on each job it adds.
    if (!previous || retry !== this.retry) {
      const prefix = this.o.prefix;
      this.buffers = new ThreadBuffers(this.redis, shardTags(prefix, shards), BUFFER_DEFAULTS);
      this.queueSettings = { prefix, shards, reflectionAttempts, reflectionBackoffMs };
      this.queues = createReflectionQueues(this.redis, this.queueSettings, this.log);
      this.retry = retry;
      for (const queue of previous ?? [])
        void queue.close().catch((err: unknown) => this.log.warn({ err }, 'closing a replaced queue'));
    }
    this.producer = new Producer(
      this.buffers as ThreadBuffers,
      this.queues as EngramQueue<'reflection'>[],
      { ...settings, timeoutMs: this.o.enqueueTimeoutMs },
      this.log,
      toSdkError,
    );
    if (this.applied) this.log.info({ settings, publishedBy: publication?.publishedBy }, 'engram settings changed');
    this.applied = json;
  }

  /**
   * Re-reads the published settings when their version changes: one HGET every
   * `settingsRefreshMs`, off the hot path. A bad publication is logged and the client keeps the
   * settings it has.
   */
  private poll(): void {
    let busy = false;
    // Warned once per run of failures, not every poll: on a cluster whose master holding the
    // settings is down, every poll fails until it is back, and the client works on meanwhile.
    let failing = 0;
    this.poller = setInterval(() => {
      if (busy || this.redis.status !== 'ready') return;
      busy = true;
      void this.refresh()
        .then(() => {
          if (failing) this.log.info({ failedPolls: failing }, 'the published engram settings are readable again');
          failing = 0;
        })
        .catch((err: unknown) => {
          failing += 1;
          if (failing === 1)
            this.log.warn(
              { err },
              'could not apply the published engram settings; keeping the current ones (said again once they are readable)',
            );
          else this.log.debug({ err, failedPolls: failing }, 'the published engram settings are still unreadable');
        })
        .finally(() => {
          busy = false;
        });
    }, this.o.settingsRefreshMs).unref();
  }

  private async refresh(): Promise<void> {
    const version = await readVersion(this.redis, this.o.prefix);
    if (version === this.version || this.closed) return;
    this.version = version;
    const publication = await readPublication(this.redis, this.o.prefix);
    if (!this.closed) this.apply(publication);
  }
}
