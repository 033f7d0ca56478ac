import type { Tables } from '../sql.js';
import type { MigrationOptions } from './index.js';

/**
 * Full-text search over what is indexed (issue 14): each indexed field keeps its text beside its
 * vector, with a generated tsvector and a GIN index, so that a name, an order number or a date a
 * vector ranks low is still found by its words. The text-search configuration is fixed when the
 * column is made (a generated column's expression is) and recorded in settings, where queries
 * read it, so a query is always parsed as the documents were.
 * A field may now have a text and no vector (a store without an embedder, or `index` paths on a
 * store that embeds nothing): `embedding` becomes nullable.
 * Rows from before this migration get their text back from the item's value where the field is
 * `$` or a path (`a.b`, `a[0].b`); vectors are left as they were.
 */
export const name = 'text-search';
export const sql = (t: Tables, o: MigrationOptions) => `
alter table ${t.vectors} alter column embedding drop not null;
alter table ${t.vectors} add column text text;
update ${t.vectors} v set text = case
    when v.field = '$' then
      case when (select count(*) from jsonb_object_keys(m.value)) = 1
                and jsonb_typeof((select e.value from jsonb_each(m.value) e limit 1)) = 'string'
           then (select e.value #>> '{}' from jsonb_each(m.value) e limit 1)
           else m.value::text end
    else m.value #>> string_to_array(regexp_replace(v.field, '\\[(-?\\d+)\\]', '.\\1', 'g'), '.')
  end
  from ${t.memories} m where m.namespace = v.namespace and m.key = v.key;
alter table ${t.vectors} add column tsv tsvector
  generated always as (to_tsvector('${o.textSearchConfig}'::regconfig, coalesce(text, ''))) stored;
create index on ${t.vectors} using gin (tsv);
insert into ${t.settings} (key, value) values ('text_search_config', to_jsonb('${o.textSearchConfig}'::text));
`;
