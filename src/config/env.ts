import cron from 'node-cron';
import { z } from 'zod';
import { tenantNameSchema } from '../core/names.js';
import { PermanentError } from '../errors.js';
import { crossCheck, envShape, settings, url } from './settings.js';

const int = (min: number) => z.coerce.number().int().min(min);
/**
 * A duration that becomes a timer (setTimeout, BullMQ's lock and stall checks, the openai
 * client's timeout). Node fires a timer past 2^31-1 ms (24.8 days) after 1 ms instead: a huge
 * SHUTDOWN_GRACE_MS exited at once on SIGTERM, a huge LLM_TIMEOUT_MS timed every request out,
 * a huge WORKER_LOCK_MS ran BullMQ's stall check every millisecond. An hour is past any use.
 */
const HOUR_MS = 3_600_000;
const timerMs = (min: number) => int(min).max(HOUR_MS, `at most ${HOUR_MS} (an hour)`);
const bool = z.stringbool({ truthy: ['1', 'true', 'yes', 'on'], falsy: ['0', 'false', 'no', 'off', ''] });

/** An API_KEYS entry at its first ':' (a key may hold more). */
const splitEntry = (entry: string) => ({
  tenant: entry.slice(0, entry.indexOf(':')),
  key: entry.slice(entry.indexOf(':') + 1),
});

/** What is wrong with one `tenant:key` entry of API_KEYS, if anything. */
function apiKeyProblem(entry: string): string | null {
  if (!entry.includes(':')) return 'has no ":"';
  const { tenant, key } = splitEntry(entry);
  if (!tenant) return 'has no tenant before ":"';
  const name = tenantNameSchema.safeParse(tenant);
  if (tenant !== '*' && !name.success)
    return `has a tenant other than * that is not a tenant name: it ${name.error.issues[0]?.message}`;
  if (!key) return 'has no key after ":"';
  return key.length < 16 ? 'has a key shorter than 16 characters' : null;
}

/**
 * Whether entry `n` gives a key of an earlier entry to another tenant. Keys are looked up in one
 * table, where the later entry won: one tenant's application would have acted as the other.
 */
function sharedKeyProblem(entries: string[], n: number): string | null {
  const { tenant, key } = splitEntry(entries[n] as string);
  const first = entries.findIndex((e) => splitEntry(e).key === key);
  if (first === n || splitEntry(entries[first] as string).tenant === tenant) return null;
  return `has the key of entry ${first + 1}, another tenant's: a key names one tenant`;
}

/**
 * Every environment variable engram reads, in one schema (the only place that reads
 * `process.env`). Parsed once at start; `parseEnv` names every bad variable at once.
 */
export const envSchema = z
  .object({
    /** The settings the SDK shares (settings.ts): REDIS_URL, ENGRAM_PREFIX, DEBOUNCE_MS... */
    ...envShape(),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    LOG_PRETTY: bool.default(false),

    /** Where embedded services keep their data when their URL is unset. */
    ENGRAM_DATA_DIR: z.string().min(1).default('.engram'),
    PGLITE_DATA_DIR: z.string().min(1).default('.engram/pgdata'),
    DATABASE_POOL_MAX: int(1).default(10),

    /** Prefix searches over at most this many items rank exactly even when the ANN index exists. */
    STORE_EXACT_SEARCH_MAX: int(0).default(10_000),
    /**
     * The Postgres text-search configuration of full-text search (`english`, `simple`, `german`...),
     * fixed when the schema's migrations first run; a schema made with another refuses to start.
     */
    /**
     * How vectors are stored, fixed when the schema is made: `float` (4 bytes a dimension) or
     * `half` (pgvector's halfvec: half the memory, a little less recall).
     */
    STORE_VECTOR_STORAGE: z.enum(['float', 'half']).default('float'),
    STORE_TEXT_SEARCH_CONFIG: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a text-search configuration name such as english or simple')
      .default('english'),

    OPENAI_API_KEY: z.string().min(1, 'required (any non-empty string for servers without auth, such as Ollama)'),
    OPENAI_BASE_URL: url(/^https?$/).optional(),
    CHAT_MODEL: z.string().min(1).default('gpt-4o-mini'),
    EMBEDDING_API_KEY: z.string().min(1).optional(),
    LLM_TIMEOUT_MS: timerMs(100).default(60_000),
    /** Embedding requests are short: a separate, tighter timeout (LLM_TIMEOUT_MS when unset). */
    EMBEDDING_TIMEOUT_MS: timerMs(100).optional(),
    /** Retries of a model request on 408/409/429/5xx/timeouts, with jittered exponential backoff. */
    LLM_MAX_RETRIES: int(0).max(10).default(3),
    /** First backoff step (doubles per retry); also caps an honoured Retry-After at 40x this. */
    LLM_RETRY_BASE_MS: int(1).max(60_000).default(500),

    /** A JSON or YAML file declaring the memory kinds (JSON Schema documents); the default kind when unset. */
    ENGRAM_KINDS_FILE: z.string().min(1).optional(),

    REFLECTION_CONCURRENCY: int(1).max(1000).default(8),
    /**
     * How long a reflection's job lock and thread lease live without renewal: a SIGKILLed worker's
     * job is taken over as stalled after about this long.
     */
    WORKER_LOCK_MS: timerMs(1_000).default(30_000),
    /** SIGTERM: how long active reflections may run before they are aborted and handed back. */
    SHUTDOWN_GRACE_MS: timerMs(0).default(20_000),
    /** How many already-reflected turns stay in the buffer as context for the next reflection. */
    CONTEXT_TURNS: int(0).max(100).default(4),
    /** Memories of each kind shown to the model as "existing" (bounded so prompts stay flat). */
    EXISTING_TOP_K: int(1).max(200).default(20),

    /**
     * Checked here with the scheduler's own node-cron, so that every process refuses a bad one at
     * start with the other problems (the scheduler alone used to fail, after connecting).
     */
    CONSOLIDATION_CRON: z
      .string()
      .min(1)
      .default('*/5 * * * *')
      .refine((expression) => cron.validate(expression), {
        message: 'is not a valid cron expression (five fields, or six with seconds first)',
      }),
    /**
     * Cosine distance under which two memories of one kind go to the model as possible
     * duplicates at consolidation; 0 turns merging off. The model, not the distance, decides
     * what merges: a wider window costs tokens, not wrong merges.
     */
    CONSOLIDATION_MERGE_DISTANCE: z.coerce.number().min(0).max(2).default(0.2),
    /** Namespaces compared per consolidation pass (oldest change first); the rest wait a pass. */
    CONSOLIDATION_MAX_NAMESPACES: int(1).max(10_000).default(100),

    HOST: z.string().min(1).default('127.0.0.1'),
    /**
     * `tenant:key` pairs, comma-separated. When set, every /v1 request needs one of the keys, and
     * touches only namespaces whose first label is its tenant (`*`: every tenant, for operators).
     */
    API_KEYS: z
      .string()
      .transform((v, ctx) =>
        v
          .split(',')
          .map((p) => p.trim())
          .filter(Boolean)
          .map((entry, n, entries) => {
            // By position, never by text: an entry holds a secret, and this message is logged.
            const problem = apiKeyProblem(entry) ?? sharedKeyProblem(entries, n);
            if (problem)
              ctx.addIssue({
                code: 'custom',
                message: `entry ${n + 1} ${problem}; each entry is tenant:key, such as acme:<a key of at least 16 characters>`,
              });
            return splitEntry(entry);
          }),
      )
      .optional(),
    /** Basic-auth password (user `admin`) for Bull Board at /admin/queues; open when unset. */
    ADMIN_PASSWORD: z.string().min(8, 'at least 8 characters').optional(),
    PORT: int(0).max(65535).default(3000),
    /**
     * A process without the API role serves GET /metrics (and /healthz) on this port when set;
     * with the API, /metrics is on PORT.
     */
    METRICS_PORT: int(0).max(65535).optional(),

    /**
     * Operations: what a peer may hold, and who may reach the API. The API refuses to listen on
     * an address other than loopback without API_KEYS unless ALLOW_OPEN_ACCESS is true: open by
     * default, every tenant's memories and the job queues were one request away.
     */
    ALLOW_OPEN_ACCESS: bool.default(false),
    /**
     * Host names the API answers besides loopback ones (localhost, 127.0.0.0/8, [::1]), any port;
     * `*` for any. Unset: none more when HOST is loopback, any otherwise (api/host-guard.ts).
     */
    ALLOWED_HOSTS: z
      .string()
      .transform((v, ctx) =>
        v
          .split(',')
          .map((h) => h.trim().toLowerCase())
          .filter(Boolean)
          .map((name) => {
            if (!/^(\*|\[[0-9a-f:.]+\]|[a-z0-9.-]+)$/.test(name))
              ctx.addIssue({
                code: 'custom',
                message: `${JSON.stringify(name)} is not a host name: give names without scheme or port (every port is allowed), such as engram.example.com or [::1], or * for any`,
              });
            return name;
          }),
      )
      .optional(),
    /** A request's headers and body must arrive within this long (408); its headers within 10 s at most. */
    HTTP_REQUEST_TIMEOUT_MS: int(100).max(600_000).default(60_000),
    /**
     * Postgres' own statement_timeout; the client gives up 2 s later (a 503 naming Postgres), so a
     * server that accepts a connection but never answers cannot hold a read for good.
     */
    DATABASE_QUERY_TIMEOUT_MS: int(100).max(3_600_000).default(30_000),
    /**
     * Prepare the statements of reflections and change sets once per connection. Off behind a
     * pooler that cannot keep them (PgBouncer in transaction mode before 1.21, or without
     * `max_prepared_statements`).
     */
    DATABASE_PREPARE: bool.default(true),
    /** Pipeline a transaction's statements (fewer round trips). Off behind a pooler that cannot take them. */
    DATABASE_PIPELINE: bool.default(true),
    /** OpenTelemetry traces over OTLP/HTTP to this collector (`/v1/traces` appended); off when unset. */
    OTEL_EXPORTER_OTLP_ENDPOINT: url(/^https?$/).optional(),
    /** The traces' service name; `engram-<process>` (engram-api, engram-reflection...) when unset. */
    OTEL_SERVICE_NAME: z.string().min(1).max(200).optional(),
  })
  .refine((e) => !e.DATABASE_READ_URL || e.DATABASE_URL, {
    path: ['DATABASE_URL'],
    message:
      'is required when DATABASE_READ_URL is set: read replicas are of a Postgres primary (the embedded PGlite has none)',
  })
  .refine((e) => !e.API_KEYS?.length || e.ADMIN_PASSWORD, {
    path: ['ADMIN_PASSWORD'],
    message: "is required when API_KEYS is set: Bull Board shows every tenant's jobs",
  })
  .check(crossCheck((key) => settings[key].env));

export type Env = z.infer<typeof envSchema>;

/**
 * A one-shot command's environment (migrate, store:ann-index): only the variables it names are
 * read, the rest take their defaults, so a service setting it has no use for (a cron, a cluster
 * URL with its prefix rules) cannot stop it. The service's required ones get placeholders.
 */
export function parseEnvOf(names: readonly (keyof Env)[], source: NodeJS.ProcessEnv = process.env): Env {
  const picked = Object.fromEntries(names.map((name) => [name, source[name]]));
  return parseEnv({ OPENAI_API_KEY: 'unused', REDIS_URL: 'redis://unused', ...picked });
}

/** Parses the environment, or throws one error that lists every problem, one per line. */
export function parseEnv(source: NodeJS.ProcessEnv = process.env): Env {
  // Empty strings are how shells and compose files spell "unset".
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((issue) => {
    const name = issue.path.join('.') || '(environment)';
    const message =
      issue.code === 'invalid_type' && cleaned[name] === undefined ? 'is required but not set' : issue.message;
    return `  ${name}: ${message}`;
  });
  throw new PermanentError(
    `Invalid environment (${lines.length} problem${lines.length === 1 ? '' : 's'}):\n${lines.join('\n')}`,
  );
}
