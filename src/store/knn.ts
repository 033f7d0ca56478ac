import type { Tables } from './sql.js';

/**
 * The nearest-neighbour SQL every vector read is built from (search, the reflection's snapshot,
 * consolidation's candidates), so that distance, ordering and "best field per item" mean one
 * thing everywhere. `<=>` is pgvector's cosine distance; a score is 1 - distance.
 */

/**
 * Distances from `query` (a SQL expression of type vector) to the vectors matching `where` (on
 * alias `v`). With `limit` they come nearest first and cut: the form an HNSW index can serve,
 * approximate when it does. Without, every vector in scope: exact.
 */
export function vectorDistances(t: Tables, query: string, where: string, limit?: string): string {
  const ranked = limit ? ` order by distance limit ${limit}` : '';
  return `select v.namespace, v.key, v.field, v.embedding <=> ${query} as distance from ${t.vectors} v where ${where}${ranked}`;
}

/**
 * Each item's best (smallest) distance over its embedded fields, from a relation of
 * `vectorDistances` rows. Exact reads give it a materialized CTE: grouped in the same query
 * level, the sort carried each row's vector along (1,536 floats a row spill to disk).
 */
export function bestPerItem(from: string): string {
  return `select namespace, key, min(distance) as distance from ${from} group by namespace, key`;
}
