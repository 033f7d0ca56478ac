import { LimitError } from '../errors.js';
import { parsePath, resolvePath } from '../core/json-path.js';

/**
 * Fields one item may index. Each is a text stored and, with an embedder, a vector computed and
 * written: a `[*]` path over a 20,000-element array (a 169 KB put) made 20,000 of each and held
 * the API's event loop for 14.5 s. Above any item a person would write field by field.
 */
export const MAX_FIELDS_PER_ITEM = 256;

/**
 * The texts to embed for a value, one per concrete field path (a `[*]` path yields one per
 * element, so an item may carry several vectors). `$` is the whole value, embedded the way
 * reflections embed a kind without `embedFields` (src/memory/kinds.ts): a value with a single
 * string field embeds that string, anything else its JSON. Missing, null and empty fields get no
 * vector, so the vector of a field that disappears on update is deleted. More than
 * MAX_FIELDS_PER_ITEM is a LimitError naming the path that went past it (`what`: the put).
 */
export function embeddingTexts(
  value: Record<string, unknown>,
  fields: string[],
  what = 'this put',
): { field: string; text: string }[] {
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
      if (out.size > MAX_FIELDS_PER_ITEM)
        throw new LimitError(
          `${what}: index path \`${field}\` takes it past ${MAX_FIELDS_PER_ITEM} fields to index, the most one item may have: ` +
            'index fewer paths or elements, or put it with `index: false`',
        );
    }
  }
  return [...out].map(([field, text]) => ({ field, text }));
}
