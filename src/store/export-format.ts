import { z } from 'zod';
import { kindNameSchema, namespaceSchema } from '../core/names.js';
import { JSON_MAX_DEPTH, jsonCheck } from '../core/json-bounds.js';
import { storableText } from '../core/safe-text.js';

/**
 * engram's export format: NDJSON, one JSON object a line. A header, then each item with the
 * texts it is indexed by (vectors are not exported: the importing deployment embeds the texts
 * with its own model), then, when asked, each item's history rows, oldest first. Importing a file
 * into an empty deployment restores the items with their versions, times and validity, and
 * their history as it was. One schema per line type: a file is input from outside.
 */
const time = z.iso.datetime({ offset: true });
/** A document: bounded and checked without recursion (a line is input from outside). */
const json = z
  .custom<Record<string, unknown>>()
  .check(jsonCheck({ object: {}, maxDepth: JSON_MAX_DEPTH, text: true, maxChars: 1_000_000 }));
const text = z.string().check(storableText);

export const exportHeaderSchema = z.strictObject({
  type: z.literal('export'),
  format: z.literal(1),
  exportedAt: time,
  scope: z.custom<Record<string, unknown>>().check(jsonCheck({ object: {}, maxDepth: 8, maxChars: 10_000 })),
});

export const exportedItemSchema = z.strictObject({
  type: z.literal('item'),
  namespace: namespaceSchema,
  key: text.min(1).max(1_024),
  // A kind as a put names it: any other text would be stored as a kind no put could write.
  kind: kindNameSchema,
  value: json,
  version: z.number().int().min(1),
  createdAt: time,
  updatedAt: time,
  expiresAt: time.nullable(),
  ttlMs: z.number().int().positive().nullable(),
  validFrom: time,
  invalidAt: time.nullable(),
  fields: z.array(z.strictObject({ field: text.min(1).max(512), text: text.max(32_000) })).max(256),
});

export const exportedHistorySchema = z.strictObject({
  type: z.literal('history'),
  namespace: namespaceSchema,
  key: text.min(1).max(1_024),
  // A kind as a put names it: any other text would be stored as a kind no put could write.
  kind: kindNameSchema,
  op: z.enum(['insert', 'update', 'delete', 'expire', 'invalidate']),
  version: z.number().int().min(1),
  before: json.nullable(),
  after: json.nullable(),
  actor: text.min(1).max(200),
  threadId: text.max(300).nullable(),
  at: time,
});

export const exportLineSchema = z.discriminatedUnion('type', [
  exportHeaderSchema,
  exportedItemSchema,
  exportedHistorySchema,
]);
export type ExportedItem = z.infer<typeof exportedItemSchema>;
export type ExportedHistory = z.infer<typeof exportedHistorySchema>;
export type ExportLine = z.infer<typeof exportLineSchema>;
