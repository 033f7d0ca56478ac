import type { Tables } from '../sql.js';

/**
 * The store API (issue 3).
 * - Namespaces compare byte-wise (`collate "C"`) so that a prefix is a btree range on the primary
 *   keys (see `prefixCondition`), the same on every server locale and on PGlite.
 * - `namespaces.items` counts the items of a namespace, kept by every write path in the
 *   transaction that already bumps the namespace version; search uses it to pick exact ranking.
 * - History is read newest-first per key to number a re-created item after its last version.
 */
export const name = 'store-api';
export const sql = (t: Tables) => `
alter table ${t.vectors} drop constraint if exists memory_vectors_namespace_key_fkey;
alter table ${t.memories} alter column namespace type text[] collate "C";
alter table ${t.vectors} alter column namespace type text[] collate "C";
alter table ${t.vectors} add constraint memory_vectors_namespace_key_fkey
  foreign key (namespace, key) references ${t.memories} (namespace, key) on delete cascade;
alter table ${t.history} alter column namespace type text[] collate "C";
alter table ${t.namespaces} alter column namespace type text[] collate "C";

alter table ${t.namespaces} add column items bigint not null default 0;
insert into ${t.namespaces} (namespace, items)
  select namespace, count(*) from ${t.memories} group by namespace
  on conflict (namespace) do update set items = excluded.items;
`;
