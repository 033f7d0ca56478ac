/** Quotes a SQL identifier. The one place identifiers meet SQL text. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export const ANN_INDEX = 'memory_vectors_embedding_hnsw';

/** Fully qualified table names in the store's schema (no reliance on search_path, so PgBouncer works). */
export function tables(schema: string) {
  const q = (t: string) => `${ident(schema)}.${ident(t)}`;
  return {
    schema: ident(schema),
    migrations: q('migrations'),
    settings: q('settings'),
    memories: q('memories'),
    vectors: q('memory_vectors'),
    history: q('memory_history'),
    namespaces: q('namespaces'),
    cursors: q('thread_cursors'),
    appliedChanges: q('applied_changes'),
    erasures: q('erasures'),
    /** The optional HNSW index for large prefix searches (`npm run store:ann-index`). */
    annIndex: q(ANN_INDEX),
  };
}
export type Tables = ReturnType<typeof tables>;

/** Positional parameters for SQL built from parts (filters, optional clauses). */
export class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/**
 * Whole-segment prefix match on a `text[] collate "C"` column, as a btree range on the primary
 * keys. With byte order, the arrays that start with the labels [a, ..., z] are exactly those in
 * [[a, ..., z], [a, ..., z || '\x01']): a longer array with the same labels sorts after the
 * prefix and before the bound (its label z is shorter than z || '\x01'); an array whose label
 * continues z ("foo" -> "foobar", "foo%") sorts at or after the bound, since no label holds a NUL
 * and every other byte is >= 0x01; anything else differs earlier. No separate `namespace[1:n] =`
 * check: the planner estimates it at a fraction of a percent, which hides the HNSW index and
 * misjudges every plan; the namespace tests prove the range alone (separators, `%`, `_`, `*`,
 * `\`, `\x01` inside labels). Labels are parameters, never pattern text.
 */
export function prefixCondition(column: string, prefix: string[], params: Params): string {
  if (prefix.length === 0) return 'true';
  const lo = params.add(prefix);
  const hi = params.add([...prefix.slice(0, -1), `${prefix.at(-1) ?? ''}\u0001`]);
  return `(${column} >= ${lo}::text[] and ${column} < ${hi}::text[])`;
}

/** Where a search looks: every namespace under a prefix (whole labels), or exactly these namespaces. */
export type SearchScope = { prefix: string[] } | { namespaces: string[][] };

/** The condition (on `column`) of a scope: a btree range for a prefix, a semi-join for a list. */
export function scopeCondition(column: string, scope: SearchScope, p: Params): string {
  if ('prefix' in scope) return prefixCondition(column, scope.prefix, p);
  return `${column} in (select ${namespaceFromJson('j')} from unnest(${p.add(scope.namespaces.map((ns) => JSON.stringify(ns)))}::text[]) as j)`;
}

/** The last labels of a namespace equal `suffix`. */
export function suffixCondition(column: string, suffix: string[], params: Params): string {
  const s = params.add(suffix);
  return `(cardinality(${column}) >= cardinality(${s}::text[]) and ${column}[cardinality(${column}) - cardinality(${s}::text[]) + 1:cardinality(${column})] = ${s}::text[])`;
}

/** Live items only: an expired item is never returned, swept or not. */
export const alive = (alias: string) => `(${alias}.expires_at is null or ${alias}.expires_at > now())`;

/**
 * A namespace's `updated_at` after a write: never back. A writer's now() is its BEGIN, which may
 * precede the last writer's, and consolidation selects namespaces by it.
 */
export const touched = (alias: string, at = 'now()') => `greatest(${alias}.updated_at, ${at})`;

/**
 * The expiry `ms` (a SQL expression, null for none) after `at`, on the database's clock: the one
 * clock of puts, reflections and refreshes. A writer passes the time it read its items at, after
 * its locks (change-sql.ts): its `now()` is its BEGIN, and it may have waited past the TTL.
 */
export const expiryAfter = (ms: string, at: string) => `${at} + ${ms} * interval '1 millisecond'`;

/**
 * Items a TTL refresh would renew: an expiry and its duration, and an expiry earlier than now +
 * 99% of the duration (one refreshed within the last 1% of its TTL is left alone; see
 * refresh-ttl.ts).
 */
export const refreshDue = (alias: string) =>
  `(${alias}.ttl_ms is not null and ${alias}.expires_at is not null and ${alias}.expires_at < now() + ${alias}.ttl_ms * interval '0.99 millisecond')`;

/**
 * A namespace sent as JSON text, as text[]. Batches carry namespaces this way because a ragged
 * list of text[] is no Postgres array.
 */
export const namespaceFromJson = (expr: string) =>
  `array(select e.x from jsonb_array_elements_text((${expr})::jsonb) with ordinality as e(x, i) order by e.i)::text[]`;
