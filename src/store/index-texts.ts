import { kindOfNamespace, type KindRoute } from '../core/kind-route.js';
import { InputError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import { embedWithin } from '../llm/query-deadline.js';
import { embedTexts, putLabel, textLabel } from './embed-texts.js';
import { embeddingTexts } from './index-fields.js';
import type { BatchOpParsed } from './schemas.js';
import type { StoreOptions } from './store-service.js';
import type { IndexedField } from './types.js';

/**
 * The kind each put of a store call names, or else the kind of its namespace among `kinds`, by op
 * index: what it is indexed by, the TTL it gets, and the kind of the item it creates.
 */
export function kindsOfPuts(ops: BatchOpParsed[], kinds: readonly KindRoute[]): Map<number, string> {
  const named = new Map<number, string>();
  for (const [i, op] of ops.entries()) {
    if (op.op !== 'put') continue;
    const kind = op.kind ?? kindOfNamespace(kinds, op.namespace);
    if (kind !== undefined) named.set(i, kind);
  }
  return named;
}

/**
 * Per op index: the indexed fields of each put (their texts, and vectors when an embedder is
 * configured) and the query of each search that ranks by vector; one embedding call for all.
 */
export async function indexTexts(
  ops: BatchOpParsed[],
  kinds: Map<number, string>,
  byName: ReadonlyMap<string, KindRoute>,
  opts: Pick<StoreOptions, 'embedder' | 'indexFields' | 'queryDeadline'>,
  signal?: AbortSignal,
): Promise<Map<number, IndexedField[]>> {
  // One list per op, made once: appending by copy was quadratic in an item's fields.
  const out = new Map<number, IndexedField[]>();
  for (const [i, op] of ops.entries()) {
    if (op.op === 'search' && op.query !== undefined) {
      if ((op.mode ?? 'vector') === 'text') continue;
      if (!opts.embedder)
        throw new InputError(
          'search by `query` needs an embedder (or `mode: "text"`): configure embedding for this store',
        );
      out.set(i, [{ field: 'query', text: op.query }]);
    } else if (op.op === 'put' && op.index !== false) {
      // A configured kind's item is indexed as a reflection indexes it, unless the put says.
      const kind = kinds.get(i);
      const configured = kind === undefined ? undefined : byName.get(kind);
      const fields = op.index ?? (configured ? (configured.embedFields ?? ['$']) : opts.indexFields);
      out.set(i, embeddingTexts(op.value, fields, putLabel(op.key)));
    }
  }
  const toEmbed = opts.embedder
    ? [...out].flatMap(([i, fields]) => fields.map((f) => ({ f, where: textLabel(ops[i] as BatchOpParsed, f.field) })))
    : [];
  if (toEmbed.length === 0) return out;
  // A call of reads only (a search, a batch without puts) is bounded by the query deadline.
  const reads = ops.every((op) => op.op !== 'put');
  const vectors = await embedWithin(reads ? opts.queryDeadline : undefined, signal, (within) =>
    embedTexts(
      opts.embedder as Embedder,
      toEmbed.map(({ f, where }) => ({ text: f.text, where })),
      within,
    ),
  );
  toEmbed.forEach(({ f }, j) => (f.vector = vectors[j]));
  return out;
}
