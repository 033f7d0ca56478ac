import { namespaceFromJson } from './sql.js';
import type { Namespace } from './types.js';

/**
 * The one lock order: the change-set writer locks the namespace rows a change touches in this
 * order, before anything else, so writers never deadlock (change-set.ts, rule 1).
 */
export function compareNamespaces(a: Namespace, b: Namespace): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return (a[i] as string) < (b[i] as string) ? -1 : 1;
  }
  return a.length - b.length;
}

export function uniqueSorted(namespaces: Namespace[]): Namespace[] {
  const unique = new Map(namespaces.map((ns) => [JSON.stringify(ns), ns]));
  return [...unique.values()].sort(compareNamespaces);
}

/**
 * The namespaces of a batch, sent as JSON texts (a ragged list of text[] is no Postgres array),
 * as rows (o, ns) in the batch's lock order.
 */
export function namespacesCte(param: string): string {
  return `(select u.o, ${namespaceFromJson('u.j')} as ns from unnest(${param}::text[]) with ordinality as u(j, o)) as nss`;
}
