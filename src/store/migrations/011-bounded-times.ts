import type { Tables } from '../sql.js';

/**
 * Times engram can answer. Before times were bounded on their UTC instant (docs/decisions.md,
 * "Times are bounded on their UTC instant"), a put could store `9999-12-31T23:59:59-15:59`, year
 * 10000 in UTC, and an import could store such a creation or expiry time: every read of the item,
 * every search under its prefix and its export then failed, since ISO text has no year past
 * 9999. Such times are moved to the nearest bound, 0001-01-01 or the last millisecond of 9999,
 * without a version or history row: the item's document is unchanged, and a time past 9999 was
 * never a time anyone meant.
 */
export const name = 'bounded-times';

const LOW = `'0001-01-01 00:00:00+00'::timestamptz`;
const HIGH = `'9999-12-31 23:59:59.999+00'::timestamptz`;

/** `col = <col within the bounds>` for each column, and the condition that any is outside. */
function bounded(table: string, columns: string[]): string {
  const set = columns.map(
    (c) => `${c} = case when ${c} < ${LOW} then ${LOW} when ${c} > ${HIGH} then ${HIGH} else ${c} end`,
  );
  const outside = columns.map((c) => `${c} < ${LOW} or ${c} > ${HIGH}`);
  return `update ${table} set ${set.join(', ')} where ${outside.join(' or ')};`;
}

export const sql = (t: Tables) => `
${bounded(t.memories, ['created_at', 'updated_at', 'expires_at', 'valid_from', 'invalid_at'])}
${bounded(t.history, ['created_at'])}
${bounded(t.namespaces, ['updated_at'])}
`;
