import { z } from 'zod';
import { enqueueResultSchema } from '../queue/schemas.js';
import { recallResultSchema } from '../memory/recall-schemas.js';
import {
  batchResultSchema,
  historyEntrySchema,
  memoryItemSchema,
  scoredMemorySchema,
  searchItemSchema,
} from '../store/types.js';

/**
 * What the HTTP API answers: the envelopes around the SDK's results, and the one error shape.
 * The routes serialize with them, the OpenAPI document is generated from them, and the HTTP
 * client (src/client) reads answers with them, so this module imports nothing but zod and other
 * schema modules.
 */

/** Every refusal: `error` says what is wrong; `details` lists the problems of bad input. */
export const errorSchema = z
  .object({
    error: z.string(),
    details: z.unknown().optional().describe('the first 20 problems (zod issues, conflicting items...)'),
  })
  .meta({ id: 'Error' });
export type ErrorBody = z.output<typeof errorSchema>;

export const enqueueResponse = enqueueResultSchema;
export const memoriesResponse = z.object({ memories: z.array(scoredMemorySchema) });
export const recallResponse = recallResultSchema;
export const itemResponse = z.object({ item: memoryItemSchema });
export const deletedResponse = z.object({ deleted: z.boolean() });
export const itemsResponse = z.object({ items: z.array(searchItemSchema) });
export const historyResponse = z.object({ history: z.array(historyEntrySchema) });
export const namespacesResponse = z.object({ namespaces: z.array(z.array(z.string())) });
export const batchResponse = z.object({ results: z.array(batchResultSchema).describe('in the order of `ops`') });

/** The data lifecycle's answers (lifecycle-routes.ts). */
export const eraseResponse = z.object({
  namespaces: z.number().int().describe('namespaces emptied'),
  items: z.number().int().describe('items deleted (their vectors with them)'),
  historyRows: z.number().int().describe('history rows deleted'),
  threads: z.number().int().describe('threads whose buffered turns were erased and cursors set to an erase epoch'),
  jobs: z.number().int().describe('reflection jobs removed'),
  prefixes: z.array(z.array(z.string())).describe('the namespace prefixes erased'),
});
export const importResponse = z.object({ items: z.number().int(), history: z.number().int() });
export const revertChangesResponse = z.object({
  restored: z.number().int().describe('items given back the document they had before'),
  deleted: z.number().int().describe('items the actor had created, deleted'),
});
