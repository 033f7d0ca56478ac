import { z } from 'zod';
import { kindNameSchema } from '../core/names.js';
import { filterSchema } from './filter.js';
import { parsePath } from './json-path.js';
import { namespaceSchema } from './types.js';

/**
 * One schema per store operation, shared by the SDK and the HTTP API (the HTTP bodies are these
 * objects as JSON). Durations are milliseconds, as everywhere in engram (LangGraph's ttl is in
 * minutes).
 */
const noNul = (s: string) => !s.includes('\u0000');
/** Whether a JSON value holds NUL in any string or key: Postgres jsonb cannot store it. */
export function holdsNul(v: unknown): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (Array.isArray(v)) return v.some(holdsNul);
  if (v && typeof v === 'object') return Object.entries(v).some(([k, x]) => k.includes('\u0000') || holdsNul(x));
  return false;
}
const key = z.string().min(1).max(1_024).refine(noNul, 'must not contain NUL');
/** A prefix may be empty: every namespace (an operator's view across tenants). */
const prefix = z.array(z.string().min(1).max(256).refine(noNul, 'must not contain NUL')).max(16);
const actor = z.string().min(1).max(200);
const json = z.json();
const value = z
  .record(z.string(), z.unknown())
  .refine((v) => json.safeParse(v).success, 'must be plain JSON (no undefined, functions, Dates or NaN)')
  .refine((v) => JSON.stringify(v).length <= 1_000_000, 'must be at most 1 MB of JSON')
  .refine((v) => !holdsNul(v), 'must not contain NUL characters (Postgres jsonb cannot store them)');
export const fieldPathSchema = z
  .string()
  .min(1)
  .max(512)
  .refine((p) => parsePath(p) !== null, 'must be `$` or a path such as `a.b`, `items[0]`, `items[*].text`');
export const searchModeSchema = z.enum(['vector', 'text', 'hybrid']);
/**
 * What held at a time (ISO 8601 with an offset): memories invalidated since count, newer ones
 * do not. Omitted: what holds now.
 */
export const asOfSchema = z.iso.datetime({ offset: true }).transform((s) => new Date(s));
/** Since when a memory holds (ISO 8601 with an offset). */
const validFrom = z.iso.datetime({ offset: true });
const ifVersion = z
  .number()
  .int()
  .min(0)
  .describe('compare-and-set: the version the item must have now (0: must not exist)');

export const putInputSchema = z.strictObject({
  namespace: namespaceSchema,
  key,
  value,
  /** false: no vectors; a list of paths: embed these instead of the store's default fields. */
  index: z.union([z.literal(false), z.array(fieldPathSchema).min(1).max(32)]).optional(),
  /** Milliseconds to live; null: never expires; omitted: the store's default TTL. */
  ttl: z
    .number()
    .int()
    .positive()
    .max(100 * 365 * 24 * 3600_000)
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
export const getInputSchema = z.strictObject({ namespace: namespaceSchema, key, refreshTtl });
/**
 * One item's change log, oldest first, a page at a time: a profile that every reflection
 * patches gathers a row (before and after) per patch. The log only grows at its end, so
 * offsets stay stable while a client pages through it.
 */
export const historyInputSchema = z.strictObject({
  namespace: namespaceSchema,
  key,
  limit: z.number().int().min(1).max(1_000).default(100),
  offset: z.number().int().min(0).default(0),
});
export const deleteInputSchema = z.strictObject({
  namespace: namespaceSchema,
  key,
  ifVersion: ifVersion.optional(),
  actor: actor.optional(),
});
export const searchInputSchema = z.strictObject({
  namespacePrefix: prefix,
  query: z.string().min(1).max(8_000).optional(),
  filter: filterSchema.optional(),
  limit: z.number().int().min(1).max(100).default(10),
  offset: z.number().int().min(0).max(100_000).default(0),
  /**
   * With `query`: rank by vector similarity (the default), by the query's words (`text`:
   * full-text, rare words weigh more), or both fused (`hybrid`).
   */
  mode: searchModeSchema.optional(),
  /** Rank exactly even when the prefix is large enough for the ANN index. */
  exact: z.boolean().optional(),
  asOf: asOfSchema.optional(),
  refreshTtl,
});
export const listNamespacesInputSchema = z.strictObject({
  prefix: prefix.optional(),
  suffix: prefix.optional(),
  maxDepth: z.number().int().min(1).max(16).optional(),
  limit: z.number().int().min(1).max(1_000).default(100),
  offset: z.number().int().min(0).default(0),
});
export const batchOpSchema = z.discriminatedUnion('op', [
  putInputSchema.extend({ op: z.literal('put') }),
  getInputSchema.extend({ op: z.literal('get') }),
  deleteInputSchema.extend({ op: z.literal('delete') }),
  searchInputSchema.extend({ op: z.literal('search') }),
  listNamespacesInputSchema.extend({ op: z.literal('listNamespaces') }),
]);
export const batchInputSchema = z.strictObject({ ops: z.array(batchOpSchema).min(1).max(1_000) });

export type PutInput = z.input<typeof putInputSchema>;
export type GetInput = z.input<typeof getInputSchema>;
export type DeleteInput = z.input<typeof deleteInputSchema>;
export type SearchInput = z.input<typeof searchInputSchema>;
export type ListNamespacesInput = z.input<typeof listNamespacesInputSchema>;
export type HistoryInput = z.input<typeof historyInputSchema>;
export type BatchOp = z.input<typeof batchOpSchema>;
export type BatchOpParsed = z.output<typeof batchOpSchema>;
