import { filterSql, type FilterClause } from './filter.js';
import { alive, type Params } from './sql.js';

/** What every ranking asks of an item (alias `m`): live, passing the filter, of the kinds asked. */
export function itemConditions(q: { filter: FilterClause[]; kinds?: string[] | undefined }, p: Params): string {
  const kinds = q.kinds ? ` and m.kind = any(${p.add(q.kinds)}::text[])` : '';
  return `${alive('m')} and ${filterSql(q.filter, 'm.value', p)}${kinds}`;
}
