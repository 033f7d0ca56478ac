import { z } from 'zod';
import { reflectionPolicySchema } from '../core/names.js';
import { clusterSeeds, isClusterUrl, layoutProblem } from '../core/redis-layout.js';
import { fieldPathSchema } from '../core/json-path.js';
import { withoutCredentials } from '../core/url-credentials.js';

/**
 * The settings a service process (environment variables) and the SDK (client options) share,
 * each defined once: its typed schema (bounds), default and meaning. The environment schema
 * (env.ts) and the SDK's options (sdk/options.ts) are both derived from these definitions, so a
 * bound or default cannot differ between them (test/settings.test.ts checks it all the same).
 *
 * `published`: the SDK takes it from what the service processes publish in Redis
 * (published-settings.ts) unless the client is given it; so it has no default of its own there.
 * `sdkRequired`: the SDK cannot do without it (the environment may, for an embedded service).
 * `agreed`: the SDK must run with the service's value, not its own: it takes the published one,
 * and an option that differs is refused. Published only when not its default, so that SDKs from
 * before the setting existed keep reading a deployment that leaves it alone.
 */
interface Definition {
  env: string;
  /** The SDK option's path when it is not the key (`embedding.model`). */
  sdk?: string;
  schema: z.ZodType;
  default?: unknown;
  published?: true;
  sdkRequired?: true;
  agreed?: true;
  doc: string;
}

/** Keeps each definition's literal env name and its schema's type, and checks its default. */
function define<const E extends string, S extends z.ZodType, const O extends Omit<Definition, 'env' | 'schema'>>(
  env: E,
  schema: S,
  options: O & { default?: z.output<S> },
): { env: E; schema: S } & O {
  return { env, schema, ...options };
}

/** The message echoes the value without its password: it goes to stderr, a supervisor's log. */
export const url = (protocols: RegExp) =>
  z.url({
    protocol: protocols,
    error: (issue) =>
      `must be a URL with ${protocols.source.replace(/[\^$]/g, '')} protocol, got ${shown(issue.input)}`,
  });
const shown = (value: unknown) => JSON.stringify(typeof value === 'string' ? withoutCredentials(value) : value);
const int = (min: number) => z.number().int().min(min);

/** One Redis as a URL, or a Redis Cluster's seed nodes, which a WHATWG URL cannot hold. */
const singleRedisUrl = url(/^rediss?$/);
const redisUrl = z.string().superRefine((value, ctx) => {
  const problem = isClusterUrl(value)
    ? clusterSeeds(value)
    : singleRedisUrl.safeParse(value).success
      ? null
      : `must be a URL with redis, rediss, redis+cluster or rediss+cluster protocol, got ${shown(value)}`;
  if (typeof problem === 'string') ctx.addIssue({ code: 'custom', message: problem });
});

export const settings = {
  redisUrl: define('REDIS_URL', redisUrl, {
    sdkRequired: true,
    doc: 'Redis: `redis://` or `rediss://` (TLS); for a Redis Cluster `redis+cluster://host:port` or `rediss+cluster://`, with more seed nodes after commas (`redis+cluster://h1:7001,h2:7001,h3:7001`) so that a process starts while one is down. The all-in-one process starts its own redis-server when it is unset (see ENGRAM_DATA_DIR).',
  }),
  redisShards: define('REDIS_SHARDS', int(1).max(128), {
    default: 1,
    agreed: true,
    doc: 'Shards of the thread buffers and the reflection queue, each under its own hash tag, so that a Redis Cluster spreads them over its masters (a thread stays on one). 1 keeps every key and queue as before shards. Every process and SDK client of a deployment must agree; change it only after a drain (docs/operations.md#changing-redis_shards): a process refuses another count while threads are pending under the one published before.',
  }),
  databaseUrl: define('DATABASE_URL', url(/^postgres(ql)?$/), {
    doc: 'Postgres with pgvector. Service unset: embedded PGlite in PGLITE_DATA_DIR (one process only); SDK unset: no search or store unless `db` is given.',
  }),
  databaseReadUrl: define(
    'DATABASE_READ_URL',
    z
      .array(url(/^postgres(ql)?$/))
      .min(1)
      .max(16),
    {
      doc: 'Streaming read replicas of DATABASE_URL (comma-separated in the environment), used in turn: store reads, search and recall go to them unless a call says `consistency: "primary"`, and fall back to the primary while one is unreachable. Writes, TTL renewals, reflections and consolidation always use the primary. Needs DATABASE_URL (PGlite has no replicas).',
    },
  ),
  prefix: define(
    'ENGRAM_PREFIX',
    z.string().regex(/^[A-Za-z0-9_{}.-]{1,64}$/, 'letters, digits, _ . - { } only (1 to 64)'),
    {
      default: 'engram',
      doc: 'Prefix of every Redis key engram and BullMQ write. On a Redis Cluster: a hash tag such as `{engram}` with one shard, no braces with several.',
    },
  ),
  schema: define('DATABASE_SCHEMA', z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case SQL identifier'), {
    default: 'engram',
    doc: 'Postgres schema of the memory tables.',
  }),
  debounceMs: define('DEBOUNCE_MS', int(0), {
    default: 30_000,
    published: true,
    doc: 'Quiet time after the last turn before a thread reflects.',
  }),
  maxWaitMs: define('MAX_WAIT_MS', int(1), {
    default: 300_000,
    published: true,
    doc: 'A thread that never goes quiet still reflects at least this often.',
  }),
  policy: define('REFLECTION_POLICY', reflectionPolicySchema, {
    default: 'enqueue',
    published: true,
    doc: 'New turns during a running reflection: `enqueue` (it commits, a follow-up runs) or `rollback`.',
  }),
  enqueueTimeoutMs: define('ENQUEUE_TIMEOUT_MS', int(10).max(600_000), {
    default: 5_000,
    doc: "An enqueue fails (503, or UnavailableError in the SDK) when Redis, connected but stalled, does not answer a round trip within this long; a refused or closed connection fails at once. Bull Board's Redis commands get as long.",
  }),
  queryEmbeddingTimeoutMs: define('QUERY_EMBEDDING_TIMEOUT_MS', int(100).max(600_000), {
    default: 2_000,
    doc: "How long a read waits for its query's embedding, retries included: past it a recall ranks by text alone (`degraded`) and a search that needs a vector fails (503, UnavailableError in the SDK). Recall sits on a chat's hot path, where memory is an aid and not a dependency: an endpoint that accepts a connection and never answers held each recall for the request timeout times its retries (4 minutes at the defaults). Formation's embeddings keep EMBEDDING_TIMEOUT_MS and LLM_MAX_RETRIES.",
  }),
  reflectionAttempts: define('REFLECTION_ATTEMPTS', int(1).max(100), {
    default: 5,
    published: true,
    doc: 'Attempts of a reflection job; BullMQ keeps the retry policy on each job when it is added.',
  }),
  reflectionBackoffMs: define('REFLECTION_BACKOFF_MS', int(0), {
    default: 5_000,
    published: true,
    doc: 'First retry delay of a failed reflection; doubles each attempt, with jitter.',
  }),
  indexFields: define('STORE_INDEX_FIELDS', z.array(fieldPathSchema).min(1), {
    default: ['$'],
    sdk: 'store.indexFields',
    doc: 'JSON paths of a stored value that get embedded when a put does not say (`$`: the whole value); comma-separated in the environment.',
  }),
  defaultTtlMs: define('STORE_DEFAULT_TTL_MS', int(1), {
    sdk: 'store.defaultTtlMs',
    doc: 'Time to live of items put without a `ttl` (ms); none when unset.',
  }),
  refreshTtlOnRead: define(
    'STORE_REFRESH_TTL_ON_READ',
    z.boolean({ error: 'must be true or false (in the environment also 1, 0, yes, no, on, off)' }),
    {
      default: true,
      sdk: 'store.refreshTtlOnRead',
      doc: 'Whether store gets and searches, and recall, renew the TTL of the items they return when the call does not say (`refreshTtl`): a memory that keeps being recalled stays. LangGraph default too.',
    },
  ),
  answerMaxBytes: define('STORE_ANSWER_MAX_BYTES', int(8 * 1024 * 1024).max(256 * 1024 * 1024), {
    default: 32 * 1024 * 1024,
    sdk: 'store.answerMaxBytes',
    doc: "Bytes of stored JSON one store call may read back: a batch's reads together, a search, a history page, `/v1/memories/search`. Past it the call is refused (413, LimitError in the SDK) and its reads stop; ask for fewer ops, a smaller `limit`, or page. At least 8 MiB, so that any one item (and a history row's before and after) can always be read.",
  }),
  embeddingModel: define('EMBEDDING_MODEL', z.string().min(1), {
    default: 'text-embedding-3-small',
    sdk: 'embedding.model',
    doc: 'Embedding model.',
  }),
  embeddingDimensions: define('EMBEDDING_DIMENSIONS', int(1).max(16_000), {
    default: 1536,
    sdk: 'embedding.dimensions',
    doc: 'Dimensions of the embeddings (the memory tables are created with it).',
  }),
  embeddingBaseUrl: define('EMBEDDING_BASE_URL', url(/^https?$/), {
    sdk: 'embedding.baseURL',
    doc: 'A separate OpenAI-compatible endpoint for embeddings (OPENAI_BASE_URL in the service when unset).',
  }),
};
export type SettingKey = keyof typeof settings;
type Settings = typeof settings;

/**
 * Checks across settings, once for both sides: `name` spells a setting as the side calls it
 * (DEBOUNCE_MS, debounceMs). A check whose settings are not all given is skipped (the SDK checks
 * again once it knows the published ones).
 */
const crossChecks: {
  keys: SettingKey[];
  path: SettingKey;
  /** The problem with these values (all given), or null. */
  problem: (v: unknown[], name: (k: SettingKey) => string) => string | null;
}[] = [
  {
    keys: ['debounceMs', 'maxWaitMs'],
    path: 'maxWaitMs',
    problem: ([debounce, maxWait], name) =>
      (maxWait as number) >= (debounce as number) ? null : `must be at least ${name('debounceMs')}`,
  },
  {
    keys: ['redisUrl', 'prefix', 'redisShards'],
    path: 'prefix',
    problem: ([url, prefix, shards], name) => {
      const problem = layoutProblem(url as string, prefix as string, shards as number);
      return problem && `${problem} (${name('redisShards')} is ${shards as number})`;
    },
  },
];

/** Issues of the cross-setting checks over `value(key)`. */
function crossIssues(
  value: (key: SettingKey) => unknown,
  name: (key: SettingKey) => string,
): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  for (const check of crossChecks) {
    const values = check.keys.map(value);
    if (values.some((v) => v === undefined)) continue;
    const message = check.problem(values, name);
    if (message) issues.push({ path: name(check.path), message });
  }
  return issues;
}

/**
 * The cross-setting checks as a zod check over an object keyed by `name(key)`: DEBOUNCE_MS in the
 * environment, debounceMs in the SDK's options and the published settings.
 */
export function crossCheck(name: (key: SettingKey) => string) {
  return (ctx: z.core.ParsePayload<unknown>) => {
    const value = ctx.value as Record<string, unknown>;
    for (const { path, message } of crossIssues((key) => value[name(key)], name))
      ctx.issues.push({ code: 'custom', input: ctx.value, path: [path], message });
  };
}

const TRUTHY = new Set(['1', 'true', 'yes', 'on']);
const FALSY = new Set(['0', 'false', 'no', 'off']);

/**
 * The same schema, reading an environment variable's text: numbers as Number() reads them (as
 * z.coerce would), booleans from the usual words, lists comma-separated. Text that is none of
 * these goes on as it is, so the typed schema refuses it with the SDK's message.
 */
function fromText<S extends z.ZodType>(schema: S) {
  if (schema instanceof z.ZodNumber) return z.preprocess((v) => (typeof v === 'string' ? Number(v) : v), schema);
  if (schema instanceof z.ZodBoolean) {
    const word = (v: string) => v.trim().toLowerCase();
    return z.preprocess(
      (v) => (typeof v !== 'string' ? v : TRUTHY.has(word(v)) ? true : FALSY.has(word(v)) ? false : v),
      schema,
    );
  }
  if (schema instanceof z.ZodArray)
    return z.preprocess(
      (v) =>
        typeof v === 'string'
          ? v
              .split(',')
              .map((f) => f.trim())
              .filter(Boolean)
          : v,
      schema,
    );
  return schema;
}

type Out<D extends Definition> = z.output<D['schema']>;
type EnvField<D extends Definition> = D extends { default: unknown }
  ? z.ZodDefault<z.ZodType<Out<D>>>
  : z.ZodOptional<z.ZodType<Out<D>>>;
type EnvShape = { [K in SettingKey as Settings[K]['env']]: EnvField<Settings[K]> };

/** Every shared setting as an environment variable (text in, typed value out). */
export function envShape(): EnvShape {
  return Object.fromEntries(
    Object.values(settings).map((d: Definition) => {
      const field: z.ZodType = fromText(d.schema);
      return [d.env, d.default === undefined ? field.optional() : field.default(d.default)];
    }),
  ) as EnvShape;
}

type SdkField<D extends Definition> = D extends { sdkRequired: true }
  ? D['schema']
  : D extends { published: true } | { agreed: true }
    ? z.ZodOptional<D['schema']>
    : D extends { default: unknown }
      ? z.ZodDefault<D['schema']>
      : z.ZodOptional<D['schema']>;

/** One shared setting as an SDK option (a typed value). */
export function sdkField<K extends SettingKey>(key: K): SdkField<Settings[K]> {
  const d: Definition = settings[key];
  if (d.sdkRequired) return d.schema as never;
  if (d.published || d.agreed || d.default === undefined) return d.schema.optional() as never;
  return d.schema.default(d.default) as never;
}

/** Shared settings as SDK options of the same names. */
export function sdkShape<K extends SettingKey>(keys: readonly K[]): { [P in K]: SdkField<Settings[P]> } {
  return Object.fromEntries(keys.map((key) => [key, sdkField(key)])) as never;
}

/** The settings service processes publish for producers (`published: true`). */
export type PublishedKey = { [K in SettingKey]: Settings[K] extends { published: true } ? K : never }[SettingKey];
export const PUBLISHED_KEYS = (Object.keys(settings) as SettingKey[]).filter(
  (key) => (settings[key] as Definition).published,
) as PublishedKey[];

/** The published settings' typed schemas, without defaults: a payload must carry each. */
export function publishedShape(): { [K in PublishedKey]: Settings[K]['schema'] } {
  return Object.fromEntries(PUBLISHED_KEYS.map((key) => [key, settings[key].schema])) as never;
}
