import type { Tables } from '../sql.js';
import type { MigrationOptions } from './index.js';

/**
 * Vector storage, chosen when the schema is made: `float` (pgvector's `vector`, 4 bytes a
 * dimension) or `half` (`halfvec`, 2 bytes: half the table and index, for a small loss of
 * recall that `npm run bench:store -- --compare-half` prints). Queries need no change: pgvector
 * casts a `vector` parameter to `halfvec` implicitly. An HNSW index built before the change is
 * dropped (its operator class is the float one); build it again with `npm run store:ann-index`.
 */
export const name = 'vector-storage';
export const sql = (t: Tables, o: MigrationOptions) =>
  o.vectorStorage === 'half'
    ? `
drop index if exists ${t.annIndex};
alter table ${t.vectors} alter column embedding type halfvec(${o.dimensions}) using embedding::halfvec(${o.dimensions});
insert into ${t.settings} (key, value) values ('vector_storage', '"half"'::jsonb);
`
    : `insert into ${t.settings} (key, value) values ('vector_storage', '"float"'::jsonb);`;
