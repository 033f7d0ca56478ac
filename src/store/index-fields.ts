import { parsePath, resolvePath } from './json-path.js';

/**
 * The texts to embed for a value, one per concrete field path (a `[*]` path yields one per
 * element, so an item may carry several vectors). `$` is the whole value, embedded the way
 * reflections embed a kind without `embedFields` (src/memory/kinds.ts): a value with a single
 * string field embeds that string, anything else its JSON. Missing, null and empty fields get no
 * vector, so the vector of a field that disappears on update is deleted.
 */
export function embeddingTexts(value: Record<string, unknown>, fields: string[]): { field: string; text: string }[] {
  const out = new Map<string, string>();
  for (const field of fields) {
    if (field === '$') {
      const only = Object.values(value);
      out.set('$', only.length === 1 && typeof only[0] === 'string' ? only[0] : JSON.stringify(value));
      continue;
    }
    const steps = parsePath(field);
    if (!steps) continue;
    for (const hit of resolvePath(value, steps)) {
      if (hit.value === null || hit.value === undefined || hit.value === '') continue;
      out.set(hit.path, typeof hit.value === 'string' ? hit.value : JSON.stringify(hit.value));
    }
  }
  return [...out].map(([field, text]) => ({ field, text }));
}
