import { z } from 'zod';
import { debounceWindowSchema, kindNameSchema } from './names.js';
import type { Namespace } from './names.js';
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
  /** How long its memories live (ms): a store put of the kind gets it too. */
  ttlMs: z.number().int().positive().optional(),
  /** The fields its memories are embedded by (the whole document when omitted), store puts too. */
  embedFields: z.array(z.string().min(1)).min(1).optional(),
});
export type KindRoute = z.infer<typeof kindRouteSchema>;

/** Whether `namespace` is one that `template` fills (`["facts", "{userId}"]` fills `["facts", "u1"]`). */
function fills(template: readonly string[], namespace: Namespace): boolean {
  if (template.length !== namespace.length) return false;
  return template.every((part, i) => {
    const pattern = part
      .split(/(\{[A-Za-z_][A-Za-z0-9_]*\})/)
      .map((piece, j) => (j % 2 === 1 ? '.+' : piece.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('');
    return new RegExp(`^${pattern}$`, 's').test(namespace[i] as string);
  });
}

/**
 * The one kind whose namespace template fills `namespace`, for a store put that names no kind:
 * its item is then that kind's memory (recall and reflections read it as one). Undefined when no
 * kind's template fills it, or several do (the caller's default kind then).
 */
export function kindOfNamespace(kinds: readonly KindRoute[], namespace: Namespace): string | undefined {
  const matching = kinds.filter((k) => fills(k.namespace, namespace));
  return matching.length === 1 ? matching[0]?.name : undefined;
}
