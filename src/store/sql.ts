/** Quotes a SQL identifier. The one place identifiers meet SQL text. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

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
  };
}
export type Tables = ReturnType<typeof tables>;
