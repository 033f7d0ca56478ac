import { z } from 'zod';
import { PermanentError } from '../errors.js';
import { namespaceSchema, type Namespace } from './names.js';

/** A namespace template such as ["chat", "{userId}"]: labels, some filled from a thread's context. */
export const namespaceTemplateSchema = z.array(z.string().min(1).max(256)).min(1).max(16);

/**
 * Fills a template such as ["chat", "{userId}"] from the thread's context. A missing variable is
 * an error, never an empty label: an empty or shared label would mix users' memories.
 */
export function fillNamespace(template: string[], context: Record<string, string>, kindName: string): Namespace {
  const filled = template.map((part) =>
    part.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      // Own properties only: `{toString}` must not fill from Object's.
      const value = Object.hasOwn(context, name) ? context[name] : undefined;
      if (value === undefined) {
        throw new PermanentError(
          `memory kind "${kindName}" needs context.${name} for namespace ${JSON.stringify(template)}, ` +
            `but the thread's context has only ${JSON.stringify(Object.keys(context))}`,
        );
      }
      return value;
    }),
  );
  // Checked as the store API checks namespaces: a label it refuses (over 256 characters once
  // filled, or holding NUL) would be written by the reflection yet unreachable through the API.
  const checked = namespaceSchema.safeParse(filled);
  if (!checked.success) {
    throw new PermanentError(
      `memory kind "${kindName}": namespace ${JSON.stringify(template)} filled from the thread's context is invalid: ${z.prettifyError(checked.error)}`,
    );
  }
  return checked.data;
}

/** Placeholders a template needs, to check an enqueue's context on the hot path without I/O. */
export function templateVariables(template: string[]): string[] {
  return template.flatMap((part) => [...part.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1] as string));
}
