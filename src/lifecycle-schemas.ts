import { z } from 'zod';
import { namespaceSchema } from './core/names.js';
import { contextSchema } from './queue/schemas.js';

/**
 * What an erase or an export covers, as the SDK and the HTTP client take it: a user's data (a
 * `context`, such as `{ userId: 'u1' }`: the namespaces the kinds fill from it) or a namespace
 * prefix, exactly one of them. An array is the prefix itself (`export(['memories', 'u1'])`, the
 * SDK's first form). One strict object with a check, not a union of two: a union's refusal is
 * "invalid input" twice, where this one names what to give. Imports only schema modules: the
 * HTTP client loads it (test/client-entry.test.ts).
 */
export const scopeSchema = z.preprocess(
  (input) => (Array.isArray(input) ? { namespacePrefix: input } : input),
  z.strictObject({ namespacePrefix: namespaceSchema.optional(), context: contextSchema.optional() }).check((ctx) => {
    if ((ctx.value.namespacePrefix === undefined) !== (ctx.value.context === undefined)) return;
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      message:
        'give exactly one of `namespacePrefix` (a namespace prefix, at least one label) or `context` (such as { userId: "u1" })',
    });
  }),
);
export type ScopeInput = Namespace | { namespacePrefix: Namespace } | { context: Record<string, string> };
type Namespace = z.input<typeof namespaceSchema>;

/** An export's options: `history` adds each item's history rows after it. */
export const exportOptionsSchema = z.strictObject({ history: z.boolean().optional() });
export type ExportOptions = z.input<typeof exportOptionsSchema>;
