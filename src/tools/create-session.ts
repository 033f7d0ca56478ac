import { z } from 'zod';
import type { KindRoute } from '../core/kind-route.js';
import { templateVariables } from '../core/namespace-template.js';
import { invalidInput } from '../core/invalid-input.js';
import { InputError } from '../errors.js';
import { defineKinds, type MemoryKind } from '../memory/kinds.js';
import { contextSchema } from '../queue/schemas.js';
import type { MemoryToolBackend } from './backend.js';
import { toolKinds } from './definitions.js';
import { ToolSession } from './session.js';

/** `memoryTools(options)`: the conversation's context, and the kinds the tools manage. */
export const memoryToolsOptionsSchema = z.strictObject({
  /** Fills the kinds' namespace templates, as the context of enqueued turns does (the user's id...). */
  context: contextSchema,
  /**
   * The kinds as the service defines them (document schemas included: `defineKinds`, or
   * `loadKindsFile` of the service's ENGRAM_KINDS_FILE); the collection kinds among them are
   * managed. The default: the service's kinds in the service, `defaultKinds` in the SDK.
   */
  kinds: z
    .array(z.custom<MemoryKind>((k) => !!k && typeof k === 'object', 'must be a memory kind (defineKind)'))
    .min(1)
    .max(256)
    .optional(),
});
export type MemoryToolsOptions = z.input<typeof memoryToolsOptionsSchema>;

/**
 * A tool session, its options checked first: a context that cannot fill the kinds' namespaces,
 * or kinds of which none is a collection, are the application's mistakes, refused here rather
 * than told to its model.
 */
export function createToolSession(
  backend: MemoryToolBackend,
  options: MemoryToolsOptions,
  defaultKinds: readonly MemoryKind[],
): ToolSession {
  const parsed = memoryToolsOptionsSchema.safeParse(options);
  if (!parsed.success) throw invalidInput('memory tools options', parsed.error);
  const { context } = parsed.data;
  let kinds: MemoryKind[];
  try {
    kinds = parsed.data.kinds ? defineKinds(parsed.data.kinds) : [...defaultKinds];
  } catch (err) {
    throw new InputError(`memory tools options: ${(err as Error).message}`, undefined, { cause: err });
  }
  const managed = toolKinds(kinds);
  if (managed.length === 0)
    throw new InputError('memory tools need at least one collection kind (profiles are kept by reflections)');
  const missing = [...new Set(managed.flatMap((k) => templateVariables(k.namespace)))].filter(
    (v) => context[v] === undefined,
  );
  if (missing.length)
    throw new InputError(
      `memory tools: context is missing ${missing.map((m) => `"${m}"`).join(', ')}, needed by the memory namespaces`,
    );
  return new ToolSession(backend, context, managed);
}

/**
 * Why the tools' kinds would write where the service's reflections do not look, or null: each
 * managed kind must be one of the service's, with the same namespace template and mode.
 */
export function kindsMismatch(kinds: readonly MemoryKind[], service: readonly KindRoute[]): string | null {
  for (const kind of toolKinds(kinds)) {
    const theirs = service.find((k) => k.name === kind.name);
    if (!theirs)
      return `memory kind "${kind.name}" is not one of the service's (${service.map((k) => k.name).join(', ')}): give memoryTools the service's kinds`;
    if (
      JSON.stringify(theirs.namespace) !== JSON.stringify(kind.namespace) ||
      (theirs.mode ?? 'collection') !== kind.mode
    )
      return `memory kind "${kind.name}" differs from the service's (namespace ${JSON.stringify(theirs.namespace)}, mode ${theirs.mode ?? 'collection'}): give memoryTools the service's kinds`;
  }
  return null;
}
