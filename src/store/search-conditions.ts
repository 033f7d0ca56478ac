import { filterSql, type FilterClause } from './filter.js';
import { alive, type Params } from './sql.js';
import type { Namespace } from './types.js';

/** Kinds by the namespace they keep their memories in. */
export type KindsAt = { namespace: Namespace; kinds: string[] }[];

/**
 * What every ranking asks of an item (alias `m`): live, holding (valid now, or at `asOf`),
 * passing the filter, of the kinds asked (where they are asked).
 */
export function itemConditions(
  q: { filter: FilterClause[]; kinds?: string[] | undefined; kindsAt?: KindsAt | undefined; asOf?: Date | undefined },
  p: Params,
): string {
  const kinds = q.kinds ? ` and m.kind = any(${p.add(q.kinds)}::text[])` : '';
  const at = q.kindsAt
    ? ` and (${q.kindsAt.map((g) => `(m.namespace = ${p.add(g.namespace)}::text[] and m.kind = any(${p.add(g.kinds)}::text[]))`).join(' or ') || 'false'})`
    : '';
  return `${alive('m')} and ${holding('m', q.asOf, p)} and ${filterSql(q.filter, 'm.value', p)}${kinds}${at}`;
}

/**
 * Valid now, or at `asOf`: from its `valid_from`, until its `invalid_at`. Now is a time like any
 * other: a fact scheduled to hold from next week does not hold yet, and one whose invalidation
 * is dated next week still does.
 */
export function holding(alias: string, asOf: Date | undefined, p: Params): string {
  const at = asOf ? `${p.add(asOf)}::timestamptz` : 'now()';
  return `(${alias}.valid_from <= ${at} and (${alias}.invalid_at is null or ${alias}.invalid_at > ${at}))`;
}
