import { z } from 'zod';

export { namespaceSchema, type Namespace } from '../core/names.js';

/**
 * What the store returns, as schemas: the types below are their outputs (Dates), and the HTTP
 * API serializes with them (Dates become ISO text, and the HTTP client reads them back).
 */

/**
 * A time: a Date in engram, ISO 8601 text in JSON. A codec, so one schema serves both ways: the
 * API encodes a Date, the HTTP client decodes the text.
 */
export const timeSchema = z.codec(z.iso.datetime({ offset: true }), z.date(), {
  decode: (text) => new Date(text),
  encode: (date) => date.toISOString(),
});

/**
 * A stored JSON object, passed as it is: `z.record` would copy every value the API answers
 * with, and what the store returns was checked when it was written.
 */
const jsonObject = z
  .custom<Record<string, unknown>>((v) => typeof v === 'object' && v !== null && !Array.isArray(v))
  .meta({ type: 'object', additionalProperties: true });
/** Labels as the store returns them (checked on the way in). */
const labels = z.array(z.string());

export const memoryItemSchema = z
  .object({
    namespace: labels,
    key: z.string(),
    kind: z.string(),
    value: jsonObject,
    version: z.number(),
    createdAt: timeSchema,
    updatedAt: timeSchema,
    expiresAt: timeSchema.nullable(),
    /** Since when the memory holds (for a reflection's memory, the time of the turns that said it). */
    validFrom: timeSchema,
    /** When a later change said it no longer holds; null while it does. Search leaves it out. */
    invalidAt: timeSchema.nullable(),
  })
  .meta({ id: 'MemoryItem' });
export type MemoryItem = z.output<typeof memoryItemSchema>;

export const scoredMemorySchema = memoryItemSchema
  .extend({
    /** Cosine similarity of the best-matching embedded field, in [-1, 1]. */
    score: z.number(),
  })
  .meta({ id: 'ScoredMemory' });
export type ScoredMemory = z.output<typeof scoredMemorySchema>;

/** A search hit: `score` is the similarity, or null for a search without a query. */
export const searchItemSchema = memoryItemSchema.extend({ score: z.number().nullable() }).meta({ id: 'SearchItem' });
export type SearchItem = z.output<typeof searchItemSchema>;

/**
 * An indexed field of an item (a JSON path, `$` for the whole value): its text, which full-text
 * search ranks, and its vector when an embedder computed one.
 */
export interface IndexedField {
  field: string;
  text: string;
  vector?: number[] | undefined;
}

export const historyEntrySchema = z
  .object({
    // `invalidate`: a temporal kind's fact contradicted or forgotten, kept with its `invalidAt`.
    op: z.enum(['insert', 'update', 'delete', 'expire', 'invalidate']),
    version: z.number(),
    kind: z.string(),
    before: jsonObject.nullable(),
    after: jsonObject.nullable(),
    actor: z.string(),
    threadId: z.string().nullable(),
    at: timeSchema,
    // Since when the memory no longer held, as this change left it: an invalidation's time (or
    // a revert's that put one back); null while it holds, and on a row that removed it.
    invalidAt: timeSchema.nullable(),
  })
  .meta({ id: 'HistoryEntry' });
export type HistoryEntry = z.output<typeof historyEntrySchema>;

/**
 * One batch op's result: the item for a put or a get (null when missing), true/false for a
 * delete, the hits of a search, the namespaces of a listing. Search hits come before plain items:
 * a union takes the first option that fits, and an item without `score` would drop it.
 */
export const batchResultSchema = z.union([
  memoryItemSchema,
  z.array(searchItemSchema),
  z.array(memoryItemSchema),
  z.array(labels),
  z.boolean(),
  z.null(),
]);
export type BatchResult = z.output<typeof batchResultSchema>;
