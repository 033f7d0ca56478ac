import { budgeted } from './answer-budget.js';
import type { Db } from './db.js';
import { COLUMNS, toItem, VALUE_BYTES } from './read-items.js';
import type { SearchQuery } from './search.js';
import { itemConditions } from './search-conditions.js';
import { Params, scopeCondition, type Tables } from './sql.js';
import type { SearchItem } from './types.js';

/**
 * Full-text ranking over the items' indexed texts, in one statement. Postgres ranks text without
 * knowing how rare a word is (`ts_rank` counts occurrences), and the point of this ranking is the
 * rare word: a name, an order number, a date that a vector ranks low. So each query word is
 * weighted by its inverse document frequency within the scope, BM25's
 * ln(1 + (N - df + 0.5) / (df + 0.5)), N from the namespaces' item counts; a field scores the
 * sum of the weights of the query words it holds, an item its best field. Term frequency and
 * length are left out: memories are a sentence or a small document.
 *
 * The query's words are the document parser's own (the schema's text-search configuration,
 * read from settings), OR-ed, so that the GIN index finds every field holding any of them.
 */
export async function textRanked(db: Db, t: Tables, q: SearchQuery & { text: string }): Promise<SearchItem[]> {
  const p = new Params();
  const text = p.add(q.text);
  const sql = `with cfg as (select (value #>> '{}')::regconfig as c from ${t.settings} where key = 'text_search_config'),
     words as (select distinct w as word from cfg, unnest(tsvector_to_array(to_tsvector(cfg.c, ${text}))) as w),
     tq as (select replace(plainto_tsquery(cfg.c, ${text})::text, ' & ', ' | ')::tsquery as q from cfg),
     hits as materialized (
       select v.namespace, v.key, v.field, tsvector_to_array(v.tsv) as words from ${t.vectors} v, tq
        where ${scopeCondition('v.namespace', q.scope, p)} and v.tsv @@ tq.q),
     total as (
       select greatest(coalesce(sum(n.items), 0), 1)::float8 as n from ${t.namespaces} n
        where ${scopeCondition('n.namespace', q.scope, p)}),
     df as (
       select w.word, count(distinct (h.namespace, h.key))::float8 as df
         from words w join hits h on w.word = any(h.words) group by w.word),
     per_field as (
       select h.namespace, h.key, sum(ln(1 + (total.n - df.df + 0.5) / (df.df + 0.5))) as score
         from hits h join df on df.word = any(h.words) cross join total
        group by h.namespace, h.key, h.field),
     best as (select namespace, key, max(score) as score from per_field group by namespace, key)
     select ${COLUMNS}, best.score as text_score
       from best join ${t.memories} m on m.namespace = best.namespace and m.key = best.key
      where ${itemConditions(q, p)}
      order by best.score desc, m.namespace, m.key limit ${p.add(q.limit)} offset ${p.add(q.offset)}`;
  const res = await db.query(
    q.budget ? budgeted(sql, 'text_score desc, namespace, key', VALUE_BYTES, p.add(q.budget.remaining)) : sql,
    p.values,
  );
  const rows = q.budget ? q.budget.take(res.rows) : res.rows;
  return rows.map((r) => Object.assign(toItem(r), { score: Number(r.text_score) }));
}
