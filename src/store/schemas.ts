import { z } from 'zod';
import { isoTimeSchema } from '../core/iso-time.js';
import { JSON_MAX_DEPTH, jsonCheck, type JsonBounds } from '../core/json-bounds.js';
import { intRange } from '../core/int-range.js';
import { kindNameSchema, sharedActor } from '../core/names.js';
import { fieldPathSchema } from '../core/json-path.js';
import { storableText } from '../core/safe-text.js';
import { filterSchema } from './filter.js';
import { namespaceSchema } from './types.js';

/**
 * One schema per store operation, shared by the SDK and the HTTP API (the HTTP bodies are these
 * objects as JSON). Durations are milliseconds, as everywhere in engram (LangGraph's ttl is in
 * minutes).
 */
export const itemKeySchema = z.string().min(1).max(1_024).check(storableText);
const key = itemKeySchema;
/** A prefix may be empty: every namespace (an operator's view across tenants). */
const prefix = z.array(z.string().min(1).max(256).check(storableText)).max(16);
const actor = z.string().min(1).max(200).check(storableText);
/** What a stored value may be: the store API checks its values by it, a reflection the model's documents. */
export const STORED_VALUE_BOUNDS: JsonBounds = {
  object: {},
  maxDepth: JSON_MAX_DEPTH,
  text: true,
  maxChars: 1_000_000,
};
/**
 * A stored value: a plain JSON object, walked once (depth, types, text, size) before anything
 * recursive sees it. `z.custom`, not `z.record`: a record copies the object and silently drops
 * a `__proto__` key, which the walk must see to refuse.
 */
export const storedValueSchema = z.custom<Record<string, unknown>>().check(jsonCheck(STORED_VALUE_BOUNDS)).meta({
  type: 'object',
  additionalProperties: true,
  description: 'a JSON object (at most 64 levels deep, 1,000,000 characters of text)',
});
const value = storedValueSchema;
/** A search's text: embedded, and matched against stored text by Postgres full-text search. */
const query = z.string().min(1).max(8_000).check(storableText);
export const searchModeSchema = z.enum(['vector', 'text', 'hybrid']);
/**
 * What held at a time (ISO 8601 with an offset): memories invalidated since count, newer ones
 * do not. Omitted: what holds now.
 */
export const asOfSchema = isoTimeSchema.transform((s) => new Date(s));
/**
 * Where a read goes: `replica` (the default) lets a read replica (DATABASE_READ_URL) serve it,
 * which may not yet show the latest writes; `primary` reads the primary, which shows every
 * committed write (read-your-writes). Without replicas both read the primary.
 */
export const consistencySchema = z.enum(['replica', 'primary']);
export type Consistency = z.infer<typeof consistencySchema>;
const consistency = consistencySchema.optional();
/** Since when a memory holds (ISO 8601 with an offset). */
const validFrom = isoTimeSchema;
const ifVersion = intRange(0, Number.MAX_SAFE_INTEGER).describe(
  'compare-and-set: the version the item must have now (0: must not exist)',
);

export const putInputSchema = z.strictObject({
  namespace: namespaceSchema,
  key,
  value,
  /** false: no vectors; a list of paths: embed these instead of the store's default fields. */
  index: z.union([z.literal(false), z.array(fieldPathSchema).min(1).max(32)]).optional(),
  /** Milliseconds to live; null: never expires; omitted: the store's default TTL. */
  ttl: intRange(1, 100 * 365 * 24 * 3600_000)
    .nullable()
    .optional(),
  kind: kindNameSchema.optional(),
  ifVersion: ifVersion.optional(),
  actor: actor.optional(),
  validFrom: validFrom.optional(),
});
/**
 * Reads renew the TTL of the items they return (now + the item's ttl), without a new version;
 * omitted: the store's default (STORE_REFRESH_TTL_ON_READ). LangGraph's `refresh_ttl`.
 */
const refreshTtl = z.boolean().optional();
export const getInputSchema = z.strictObject({ namespace: namespaceSchema, key, refreshTtl, consistency });
/**
 * One item's change log, oldest first, a page at a time: a profile that every reflection
 * patches gathers a row (before and after) per patch. The log only grows at its end, so
 * offsets stay stable while a client pages through it.
 */
export const historyInputSchema = z.strictObject({
  namespace: namespaceSchema,
  key,
  limit: intRange(1, 1_000).default(100),
  offset: intRange(0, Number.MAX_SAFE_INTEGER).default(0),
  consistency,
});
export const deleteInputSchema = z.strictObject({
  namespace: namespaceSchema,
  key,
  ifVersion: ifVersion.optional(),
  actor: actor.optional(),
});
export const searchInputSchema = z.strictObject({
  namespacePrefix: prefix,
  query: query.optional(),
  filter: filterSchema.optional(),
  limit: intRange(1, 100).default(10),
  offset: intRange(0, 100_000).default(0),
  /**
   * With `query`: rank by vector similarity (the default), by the query's words (`text`:
   * full-text, rare words weigh more), or both fused (`hybrid`).
   */
  mode: searchModeSchema.optional(),
  /** Rank exactly even when the prefix is large enough for the ANN index. */
  exact: z.boolean().optional(),
  asOf: asOfSchema.optional(),
  refreshTtl,
  consistency,
});
export const listNamespacesInputSchema = z.strictObject({
  prefix: prefix.optional(),
  suffix: prefix.optional(),
  maxDepth: intRange(1, 16).optional(),
  limit: intRange(1, 1_000).default(100),
  offset: intRange(0, Number.MAX_SAFE_INTEGER).default(0),
  consistency,
});
export const batchOpSchema = z.discriminatedUnion('op', [
  putInputSchema.extend({ op: z.literal('put') }),
  getInputSchema.extend({ op: z.literal('get') }),
  deleteInputSchema.extend({ op: z.literal('delete') }),
  searchInputSchema.extend({ op: z.literal('search') }),
  listNamespacesInputSchema.extend({ op: z.literal('listNamespaces') }),
]);
/** Operations one batch may hold; the HTTP route checks the count before it reads any. */
export const BATCH_MAX_OPS = 1_000;
export const batchInputSchema = z.strictObject({ ops: z.array(batchOpSchema).min(1).max(BATCH_MAX_OPS) });

/** Undo one item: back to the document it had at `version` (a new version; history keeps all). */
export const revertItemInputSchema = z.strictObject({
  namespace: namespaceSchema,
  key,
  version: intRange(1, Number.MAX_SAFE_INTEGER),
  ifVersion: ifVersion.optional(),
  actor: actor.optional(),
});
/**
 * An actor many users share (a memory tool's `tool:manage_memory`, the default `api`, `sdk` and
 * `admin`, a revert by one of them): an undo by it must name whose changes with a prefix of at
 * least one label. Read on the request as sent: under a tenant's key an absent prefix would
 * otherwise default to the whole tenant (api/lifecycle-routes.ts).
 */
function sharedUndoScope(r: { changedBy?: unknown; namespacePrefix?: unknown }, ctx: z.RefinementCtx): void {
  const refused = sharedUndoRefusal(r);
  if (refused) ctx.addIssue({ code: 'custom', path: ['namespacePrefix'], message: refused });
}
/** Why an undo by `changedBy` needs a prefix it lacks, or null; `own`: the asking store's default actor. */
export function sharedUndoRefusal(r: { changedBy?: unknown; namespacePrefix?: unknown }, own?: string): string | null {
  if (typeof r.changedBy !== 'string') return null;
  if (Array.isArray(r.namespacePrefix) && r.namespacePrefix.length > 0) return null;
  const shared = sharedActor(r.changedBy, own);
  if (shared === null) return null;
  return `${JSON.stringify(r.changedBy)} is ${shared}, the same for every user it wrote for: name whose changes to undo with namespacePrefix, such as one user's namespace ["memories", "u1"] (under an API key, starting with its tenant)`;
}
/** That rule alone, for a body before tenancy rewrites it. */
export const sharedUndoScopeSchema = z
  .object({ changedBy: z.unknown().optional(), namespacePrefix: z.unknown().optional() })
  .superRefine(sharedUndoScope);

/**
 * Undo everything one actor changed (a reflection or consolidation job: `reflection:<job id>@<created ms>`):
 * each item it touched goes back to what it was before, unless a later change touched it too
 * (a 409 listing them), or `force`. `namespacePrefix` keeps it to a tenant's namespaces, and must
 * be given for an actor many users share (sharedUndoScope).
 */
export const revertChangesInputSchema = z
  .strictObject({
    changedBy: actor,
    force: z.boolean().default(false),
    namespacePrefix: prefix.optional(),
    actor: actor.optional(),
  })
  .superRefine(sharedUndoScope);

export type PutInput = z.input<typeof putInputSchema>;
export type RevertItemInput = z.input<typeof revertItemInputSchema>;
export type RevertChangesInput = z.input<typeof revertChangesInputSchema>;
export type GetInput = z.input<typeof getInputSchema>;
export type DeleteInput = z.input<typeof deleteInputSchema>;
export type SearchInput = z.input<typeof searchInputSchema>;
export type ListNamespacesInput = z.input<typeof listNamespacesInputSchema>;
export type HistoryInput = z.input<typeof historyInputSchema>;
export type BatchOp = z.input<typeof batchOpSchema>;
export type BatchOpParsed = z.output<typeof batchOpSchema>;
