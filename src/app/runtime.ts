import type { FastifyInstance } from 'fastify';
import type { RedisClient } from '../queue/connection.js';
import { buildMetricsServer } from '../api/metrics-server.js';
import { BullMQOtel } from 'bullmq-otel';
import { checkOpenAccess } from '../api/access-guard.js';
import { defaultAllowedHosts } from '../api/host-guard.js';
import { buildServer } from '../api/server.js';
import { Tenancy } from '../api/tenancy.js';
import type { Env } from '../config/env.js';
import { PermanentError } from '../errors.js';
import { createModelClients } from '../llm/clients.js';
import type { Embedder } from '../llm/embedder.js';
import { logUsageSink } from '../observability/usage.js';
import type { Logger } from '../observability/logger.js';
import type { MemoryKind } from '../memory/kinds.js';
import { processKinds } from './process-kinds.js';
import { MemoryManager } from '../memory/manager.js';
import { PromptOptimizer } from '../memory/procedural/prompt-optimizer.js';
import { Eraser } from '../memory/erase.js';
import { Recall, type Reranker } from '../memory/recall.js';
import type { ReflectDeps, ReflectSettings } from '../memory/reflect.js';
import { BUFFER_DEFAULTS } from '../queue/buffer.js';
import { createRedis, RedisHealth } from '../queue/connection.js';
import { Producer } from '../queue/enqueue.js';
import { createQueues, everyQueue, type EngramQueues } from '../queue/queues.js';
import { shardTags } from '../queue/shards.js';
import { ThreadBuffers } from '../queue/thread-buffers.js';
import { ThreadLease } from '../queue/thread-lease.js';
import type { Db } from '../store/db.js';
import { MemoryDb } from '../store/memory-db.js';
import { migrate } from '../store/migrate.js';
import { openDb, openReadDb } from '../store/open.js';
import { StoreService } from '../store/store-service.js';
import { instrumented } from '../observability/instrument.js';
import { traced } from '../observability/tracing.js';
import { observedModels } from './observed-models.js';
import { describeChange, tracedProducer } from './tracing-wiring.js';
import { createMetrics, type Metrics } from '../observability/metrics.js';
import { awayOf, reflectionProbes, type ReflectionProbeFns } from './dependency-outage.js';
import { startReflectionShards } from './reflection-shards.js';
import { startScheduler } from './scheduler.js';
import { checkAndPublish } from './startup-checks.js';
import { redisReady } from '../queue/redis-ready.js';

export type Role = 'api' | 'reflection' | 'scheduler';

export interface RuntimeOptions {
  kinds?: MemoryKind[];
  /** Swap the embedder (tests and local models); the default calls the configured endpoint. */
  embedder?: Embedder;
  reflect?: Partial<ReflectSettings>;
  ceilingIntervalMs?: number;
  /** How often a reflection process held by a dependency's outage probes it (ms; 2 s when unset). */
  outagePollMs?: number;
  /**
   * Spans for enqueues, job runs, model calls and commits; on when OTEL_EXPORTER_OTLP_ENDPOINT
   * is set (the process entry starts the SDK), or for a test that started one itself.
   */
  tracing?: boolean;
  /** Reorders recall's and search's candidates (memory/recall.ts `Reranker`); off unless given. */
  rerank?: Reranker;
}

/**
 * The composition root: every collaborator is built here once and handed down. No module holds
 * a global connection, so tests run many runtimes side by side, each in its own prefix and schema.
 */
export class Runtime {
  readonly producerRedis: RedisClient;
  readonly workerRedis: RedisClient;
  /** Bull Board's own connection: its commands time out, so a stalled Redis cannot hang the board. */
  readonly boardRedis: RedisClient;
  /** Whether Redis is reachable, for this process' logs: one line when lost, one when back. */
  readonly redisHealth: RedisHealth;
  /** Whether each model endpoint answers, and takes a request (llm/probe.ts), for the reflections' hold. */
  private readonly modelProbes: Omit<ReflectionProbeFns, 'postgres'>;
  readonly db: Db;
  /** Read replicas (DATABASE_READ_URL) for reads that accept lag; null: they read `db`. */
  readonly readDb: Db | null;
  readonly store: MemoryDb;
  /** The store API (HTTP `/v1/store/...`). */
  readonly storeApi: StoreService;
  /** Every shard's thread buffer, routed by thread id (REDIS_SHARDS; one shard by default). */
  readonly buffer: ThreadBuffers;
  readonly queues: EngramQueues;
  private readonly boardQueues: EngramQueues;
  readonly producer: Producer;
  readonly embedder: Embedder;
  readonly manager: MemoryManager;
  readonly recall: Recall;
  /** Right to erasure: a user's memories, history, buffered turns and jobs. */
  readonly eraser: Eraser;
  /** Procedural memory: proposes improved prompts from feedback, stored with versions (a library call). */
  readonly promptOptimizer: PromptOptimizer;
  readonly kinds: MemoryKind[];
  readonly metrics: Metrics;
  /** BullMQ's telemetry (bullmq-otel) when tracing is on. */
  readonly telemetry: BullMQOtel | undefined;
  readonly reflectSettings: ReflectSettings;
  server: FastifyInstance | null = null;
  /** The /metrics listener of a process without the API (METRICS_PORT). */
  metricsServer: FastifyInstance | null = null;
  private readonly closers: (() => Promise<unknown>)[] = [];
  /** Ends the enqueue spans whose links are still being read (tracing on). */
  private settleTracing: (() => Promise<void>) | null = null;
  private started = false;
  private stopping: Promise<void> | null = null;

  constructor(
    readonly env: Env,
    readonly log: Logger,
    private readonly options: RuntimeOptions = {},
  ) {
    this.kinds = processKinds(env, options.kinds);
    // The process entry resolves an unset REDIS_URL (embedded redis-server) before this point.
    if (!env.REDIS_URL) throw new PermanentError('REDIS_URL is required');
    const statements = { prepare: env.DATABASE_PREPARE, pipeline: env.DATABASE_PIPELINE };
    // First: a PGlite data folder held by another process fails here, before anything else opens.
    this.db = openDb(
      {
        databaseUrl: env.DATABASE_URL,
        pgliteDataDir: env.PGLITE_DATA_DIR,
        poolMax: env.DATABASE_POOL_MAX,
        queryTimeoutMs: env.DATABASE_QUERY_TIMEOUT_MS,
        ...statements,
      },
      log,
    );
    this.readDb = openReadDb(env.DATABASE_READ_URL, this.db, env.DATABASE_POOL_MAX, log, statements);
    const health = (this.redisHealth = new RedisHealth(log.child({ component: 'redis' })));
    this.producerRedis = createRedis(env.REDIS_URL, 'producer', log, { health });
    this.workerRedis = createRedis(env.REDIS_URL, 'worker', log, { health });
    // Not lazy: its queues, made below in every role, connect it at once anyway (queues.ts).
    this.boardRedis = createRedis(env.REDIS_URL, 'producer', log, {
      commandTimeoutMs: env.ENQUEUE_TIMEOUT_MS,
      health,
      name: 'board',
    });
    const storeLog = log.child({ component: 'store' });
    const tracing = options.tracing ?? env.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined;
    // Nothing of tracing is wired in when it is off: no telemetry on the queues, no proxies.
    const telemetry = tracing ? new BullMQOtel({ tracerName: 'engram' }) : undefined;
    this.telemetry = telemetry;
    const store = new MemoryDb(
      this.db,
      env.DATABASE_SCHEMA,
      storeLog,
      { exactSearchMax: env.STORE_EXACT_SEARCH_MAX, efSearch: 100 },
      this.readDb,
    );
    this.store = tracing ? traced(store, 'apply', 'engram.commit', describeChange) : store;
    this.buffer = new ThreadBuffers(
      this.producerRedis,
      shardTags(env.ENGRAM_PREFIX, env.REDIS_SHARDS),
      BUFFER_DEFAULTS,
    );
    const queueSettings = {
      prefix: env.ENGRAM_PREFIX,
      shards: env.REDIS_SHARDS,
      reflectionAttempts: env.REFLECTION_ATTEMPTS,
      reflectionBackoffMs: env.REFLECTION_BACKOFF_MS,
    };
    this.queues = createQueues(this.producerRedis, { ...queueSettings, telemetry }, log, health);
    this.boardQueues = createQueues(this.boardRedis, queueSettings, log, health);
    this.producer = new Producer(
      this.buffer,
      this.queues.reflection,
      {
        debounceMs: env.DEBOUNCE_MS,
        maxWaitMs: env.MAX_WAIT_MS,
        policy: env.REFLECTION_POLICY,
        kinds: this.kinds,
        timeoutMs: env.ENQUEUE_TIMEOUT_MS,
      },
      log.child({ component: 'producer' }),
    );
    const metrics = (this.metrics = createMetrics(this.queues, this.buffer));
    const models = createModelClients(env, log);
    this.modelProbes = {
      ...models.probes,
      chatRate: models.rateProbes.chat,
      embeddingRate: models.rateProbes.embedding,
    };
    const { chat, embedder } = observedModels(
      { chat: models.chat, embedder: options.embedder ?? models.embedder },
      metrics,
      tracing,
    );
    this.embedder = embedder;
    if (tracing) {
      const withSpans = tracedProducer(this.producer, this.buffer, this.queues.reflection, log);
      this.producer = withSpans.producer;
      this.settleTracing = withSpans.settle;
    }
    this.manager = new MemoryManager(chat, log.child({ component: 'manager' }));
    // The reads' deadline, not the formation's: EMBEDDING_TIMEOUT_MS x LLM_MAX_RETRIES stays theirs.
    const queryDeadline = {
      ms: env.QUERY_EMBEDDING_TIMEOUT_MS,
      model: env.EMBEDDING_MODEL,
      setting: 'QUERY_EMBEDDING_TIMEOUT_MS',
    };
    const recall = new Recall(
      this.store,
      this.embedder,
      this.env.STORE_REFRESH_TTL_ON_READ,
      () => this.kinds,
      this.options.rerank,
      env.STORE_ANSWER_MAX_BYTES,
      { queryDeadline, log: log.child({ component: 'recall' }) },
    );
    this.recall = instrumented(
      instrumented(recall, 'search', metrics.searchSeconds, { op: 'search' }),
      'recallParsed',
      metrics.searchSeconds,
      { op: 'recall' },
    );
    this.eraser = new Eraser({
      store: this.store,
      // The connection with a command timeout, off the hot path like Bull Board's: a stalled
      // Redis fails an erase with a 503 within ENQUEUE_TIMEOUT_MS instead of holding it.
      redis: this.boardRedis,
      buffers: this.buffer,
      queues: this.boardQueues.reflection,
      kinds: () => this.kinds,
      log: log.child({ component: 'eraser' }),
    });
    this.promptOptimizer = new PromptOptimizer(
      this.store,
      chat,
      log.child({ component: 'prompt-optimizer' }),
      logUsageSink(log),
    );
    const storeApi = new StoreService(this.store, {
      embedder: this.embedder,
      indexFields: env.STORE_INDEX_FIELDS,
      defaultTtlMs: env.STORE_DEFAULT_TTL_MS ?? null,
      refreshTtlOnRead: env.STORE_REFRESH_TTL_ON_READ,
      answerMaxBytes: env.STORE_ANSWER_MAX_BYTES,
      queryDeadline,
      defaultKind: 'memory',
      kinds: async () => this.kinds,
      actor: 'api',
      log: storeLog,
    });
    this.storeApi = instrumented(storeApi, 'search', metrics.searchSeconds, { op: 'store-search' });
    this.reflectSettings = {
      contextTurns: env.CONTEXT_TURNS,
      existingTopK: env.EXISTING_TOP_K,
      maxTurns: 200,
      maxQueries: 8,
      maxRestarts: 3,
      ...options.reflect,
    };
  }

  /** What a reflection needs; the worker runs `reflectThread` with it (tests and the bench call it directly). */
  reflectDeps(): ReflectDeps {
    const { buffer, store, embedder, manager, kinds, reflectSettings: settings, log } = this;
    return { buffer, store, embedder, manager, kinds, settings, log, usage: logUsageSink(log) };
  }

  /** Postgres' and the models' probes: tell a dependency away for everyone from one job's failure. */
  private outageProbes() {
    return reflectionProbes({ postgres: () => this.store.ping(), ...this.modelProbes });
  }

  /** Applies migrations (the all-in-one process and `npm run migrate` call this). */
  async migrate() {
    return migrate(this.db, {
      schema: this.env.DATABASE_SCHEMA,
      dimensions: this.env.EMBEDDING_DIMENSIONS,
      textSearchConfig: this.env.STORE_TEXT_SEARCH_CONFIG,
      vectorStorage: this.env.STORE_VECTOR_STORAGE,
      log: this.log,
    });
  }

  /** Starts the given roles. Idempotent: a second call does nothing. */
  async start(roles: Role[]): Promise<void> {
    if (this.started) return;
    this.started = true;
    // Before anything connects: a refusal must not wait for Redis.
    if (roles.includes('api')) {
      const { HOST: host, PORT: port, API_KEYS: keys, ALLOW_OPEN_ACCESS: allowOpen } = this.env;
      checkOpenAccess({ host, port, keyed: !!keys?.length, allowOpen }, this.log);
    }
    await checkAndPublish({
      env: this.env,
      kinds: this.kinds,
      roles,
      redis: this.producerRedis,
      db: this.db,
      log: this.log,
      onStop: (stop) => this.closers.push(async () => stop()),
    });
    const connection = this.workerRedis;
    const prefix = this.env.ENGRAM_PREFIX;
    if (roles.includes('reflection')) {
      const w = startReflectionShards({
        connection,
        concurrency: this.env.REFLECTION_CONCURRENCY,
        lockMs: this.env.WORKER_LOCK_MS,
        queues: this.queues.reflection,
        buffers: this.buffer,
        lease: new ThreadLease(this.workerRedis, this.buffer, this.env.WORKER_LOCK_MS),
        reflect: this.reflectDeps(),
        metrics: this.metrics,
        log: this.log,
        health: this.redisHealth,
        telemetry: this.telemetry,
        ceilingIntervalMs: this.options.ceilingIntervalMs,
        outageProbes: this.outageProbes(),
        outagePollMs: this.options.outagePollMs,
      });
      this.closers.push(() => w.close(this.env.SHUTDOWN_GRACE_MS));
    }
    if (roles.includes('scheduler')) {
      const merge = {
        manager: this.manager,
        embedder: this.embedder,
        kinds: this.kinds,
        maxDistance: this.env.CONSOLIDATION_MERGE_DISTANCE,
        maxNamespaces: this.env.CONSOLIDATION_MAX_NAMESPACES,
        usage: logUsageSink(this.log),
        dependencyAway: awayOf(this.outageProbes()),
      };
      // One pass at a time fleet-wide: a pass longer than the cron interval must not overlap the
      // next tick's on another replica (both would ask the model about the same namespaces).
      await this.queues.consolidation.setGlobalConcurrency(1);
      const s = startScheduler({
        connection,
        cron: this.env.CONSOLIDATION_CRON,
        queue: this.queues.consolidation,
        store: this.store,
        merge,
        metrics: this.metrics,
        log: this.log,
        health: this.redisHealth,
      });
      this.closers.push(() => s.close());
    }
    if (!roles.includes('api') && this.env.METRICS_PORT !== undefined) {
      const metricsServer = buildMetricsServer(this.metrics, this.log);
      await metricsServer.listen({ host: this.env.HOST, port: this.env.METRICS_PORT });
      this.metricsServer = metricsServer;
      this.closers.push(() => metricsServer.close());
    }
    if (roles.includes('api')) {
      this.server = await buildServer({
        producer: this.producer,
        recall: this.recall,
        eraser: this.eraser,
        kinds: () => this.kinds,
        store: this.storeApi,
        queues: this.boardQueues,
        metrics: this.metrics,
        log: this.log,
        adminPassword: this.env.ADMIN_PASSWORD,
        tools: { kinds: this.kinds, embedder: this.embedder },
        mcp: { kinds: this.kinds, embedder: this.embedder },
        tenancy: new Tenancy(this.env.API_KEYS),
        readiness: { redis: () => redisReady(this.producerRedis), postgres: () => this.store.ping() },
        requestTimeoutMs: this.env.HTTP_REQUEST_TIMEOUT_MS,
        allowedHosts: this.env.ALLOWED_HOSTS ?? defaultAllowedHosts(this.env.HOST),
      });
      await this.server.listen({ host: this.env.HOST, port: this.env.PORT });
      const server = this.server;
      this.closers.push(() => server.close());
    }
    this.log.info({ roles, prefix, shards: this.env.REDIS_SHARDS, schema: this.env.DATABASE_SCHEMA }, 'engram started');
  }

  /**
   * Every role stops taking work at once: the HTTP server takes no more turns, the workers no more
   * jobs; each drains what it has (the reflection worker for up to its grace, then it aborts);
   * then connections close. At once, not one after another: in turn, the reflection worker kept
   * taking jobs while the server and consolidation drained, and their drains ran down the
   * process' hard-exit timer before its grace began. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.all(
        this.closers.map((close) => close().catch((err: unknown) => this.log.warn({ err }, 'error while stopping'))),
      );
      await this.settleTracing?.();
      await Promise.all([...everyQueue(this.queues), ...everyQueue(this.boardQueues)].map((q) => q.close()));
      await Promise.allSettled([
        this.producerRedis.quit(),
        this.workerRedis.quit(),
        this.db.close(),
        this.readDb?.close(),
      ]);
      this.boardRedis.disconnect();
      this.log.info('engram stopped');
    })();
    return this.stopping;
  }
}
