import { z } from 'zod';
import { debounceWindowSchema, kindNameSchema } from './names.js';
import { namespaceTemplateSchema } from './namespace-template.js';

/**
 * What a producer knows of a memory kind: its name, where its memories go, and how long its
 * turns wait. Enough to check an enqueue on the hot path and to publish to producers
 * (config/published-settings.ts); the document schema and instructions stay with formation
 * (memory/kinds.ts), whose kinds have these fields too.
 */
export const kindRouteSchema = z.object({
  name: kindNameSchema,
  namespace: namespaceTemplateSchema,
  debounceMs: debounceWindowSchema.optional(),
  /** A collection of memories, or one profile document (recall reads a profile whole). */
  mode: z.enum(['collection', 'profile']).optional(),
});
export type KindRoute = z.infer<typeof kindRouteSchema>;
