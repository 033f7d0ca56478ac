import { z } from 'zod';
import { intRange } from '../core/int-range.js';
import { kindRouteSchema } from '../core/kind-route.js';
import { kindNameSchema, namespaceSchema } from '../core/names.js';
import { contextSchema, enqueueResultSchema } from '../queue/schemas.js';
import { itemKeySchema, storedValueSchema } from '../store/schemas.js';
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
export const importResponse = z.object({
  items: z.number().int().describe('items imported'),
  history: z.number().int().describe('history rows imported'),
  expired: z
    .number()
    .int()
    .describe('items left out, with their history rows, because their expiry had passed since the export'),
});
export const revertChangesResponse = z.object({
  restored: z.number().int().describe('items given back the document they had before'),
  deleted: z.number().int().describe('items the actor had created, deleted'),
});

/**
 * The memory tools over HTTP (tool-routes.ts): one `manage_memory` operation as a tool session
 * decided it (src/tools/session.ts), for the service to check and write as `LocalToolBackend`
 * does in-process. Checked here for its shape; the document against its kind's schema, and the
 * kind against the service's, by the route.
 */
const toolTarget = z.strictObject({
  namespace: namespaceSchema,
  key: itemKeySchema,
  kind: kindNameSchema,
  version: intRange(1, Number.MAX_SAFE_INTEGER).describe('the version the model was shown (compare-and-set)'),
});
const toolDocument = storedValueSchema.describe("the complete document, checked against its kind's schema");
export const toolApplyInputSchema = z
  .strictObject({
    /** Fills the kinds' namespaces, as a recall's context does (under an API key, the key's tenant). */
    context: contextSchema,
    op: z.discriminatedUnion('op', [
      z.strictObject({ op: z.literal('insert'), kind: kindNameSchema, document: toolDocument }),
      z.strictObject({ op: z.literal('update'), target: toolTarget, document: toolDocument }),
      z.strictObject({ op: z.literal('delete'), target: toolTarget }),
    ]),
    /** The history actor: the tool the model called, as the in-process tools record it. */
    actor: z
      .string()
      .regex(
        /^tool:[a-z][a-z0-9_]{0,63}$/,
        'must be `tool:<name>`, the tool the model called (such as tool:manage_memory)',
      ),
  })
  .meta({ id: 'ToolChange' });
export type ToolApplyInput = z.input<typeof toolApplyInputSchema>;

/** A memory as a tool session keeps it (src/tools/backend.ts, `StoredMemory`). */
const toolMemory = memoryItemSchema
  .pick({ namespace: true, key: true, kind: true, version: true, value: true, updatedAt: true })
  .meta({ id: 'ToolMemory' });
export const toolApplyResponse = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('applied'),
    memory: toolMemory.nullable().describe('the memory as written; null after a delete or an invalidation'),
  }),
  z.object({
    status: z.literal('conflict'),
    current: toolMemory
      .nullable()
      .describe('nothing was written: the memory moved since the model saw it; how it is now (null: gone)'),
  }),
]);

/** The deployment's kinds (`GET /v1/kinds`): what a remote tool session checks its own against. */
export const kindsResponse = z.object({
  kinds: z.array(
    kindRouteSchema.extend({
      mode: z.enum(['collection', 'profile']),
      description: z.string(),
      document: z.record(z.string(), z.unknown()).describe('the JSON Schema of its documents'),
    }),
  ),
});
