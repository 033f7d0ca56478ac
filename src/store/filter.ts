import { z } from 'zod';
import { JSON_MAX_DEPTH, jsonCheck } from '../core/json-bounds.js';
import { parsePath } from '../core/json-path.js';
import type { Params } from './sql.js';

/**
 * Filters on value fields, LangGraph/Mongo style: `{ "profile.age": { $gte: 18 }, status: "active" }`.
 * A plain value means `$eq`; several conditions all have to hold. Range operators take a number
 * or a string and only match values of that JSON type, compared as that type: numbers as numbers
 * (LangGraph compared JSON text, so '9' > '10', langgraph #7684) and strings byte-wise.
 * `$ne` and `$nin` also match items where the field is missing; `$exists` tells the two apart.
 */
export type FilterOp = '$eq' | '$ne' | '$gt' | '$gte' | '$lt' | '$lte' | '$in' | '$nin' | '$exists';
export interface FilterClause {
  path: string[];
  op: FilterOp;
  value: unknown;
}

const OPS = new Set<string>(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists']);
const RANGE = new Set<string>(['$gt', '$gte', '$lt', '$lte']);

/** Values one `$in` or `$nin` may list. */
const MAX_IN = 1_000;

/**
 * Walked once (json-bounds.ts: depth, text, `__proto__`) before the clauses are read; its text
 * reaches Postgres as path elements and jsonb. `z.custom`, not `z.record`, for the reason the
 * store's `value` gives (schemas.ts).
 */
export const filterSchema = z
  .custom<Record<string, unknown>>()
  .check(jsonCheck({ object: { maxKeys: 32 }, maxDepth: JSON_MAX_DEPTH, text: true }))
  .transform((filter, ctx) => {
    const clauses: FilterClause[] = [];
    for (const [field, condition] of Object.entries(filter)) {
      // An operator where a field goes (`$and`, `$or`...) would be read as a field of that
      // name and silently match nothing.
      if (field.startsWith('$')) {
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: `${field.slice(0, 32)} is not a field: operators go under a field ({"status": {"$ne": "done"}}); conditions side by side all have to hold, and there is no $and or $or`,
        });
        continue;
      }
      const steps = field.length <= 512 ? parsePath(field) : null;
      if (!steps || steps.length === 0 || steps.includes('*')) {
        ctx.addIssue({
          code: 'custom',
          path: [field],
          message: 'must be a field path such as `a.b` or `items[0].name` (no `*`, not `$`; at most 512 characters)',
        });
        continue;
      }
      const path = steps.map(String);
      const isOps =
        condition !== null &&
        typeof condition === 'object' &&
        !Array.isArray(condition) &&
        Object.keys(condition).some((k) => k.startsWith('$'));
      if (!isOps) {
        clauses.push({ path, op: '$eq', value: condition });
        continue;
      }
      for (const [op, value] of Object.entries(condition as Record<string, unknown>)) {
        const problem = checkOperand(op, value);
        if (problem) ctx.addIssue({ code: 'custom', path: [field, op], message: problem });
        else clauses.push({ path, op: op as FilterOp, value });
      }
    }
    return clauses;
  })
  .meta({
    type: 'object',
    additionalProperties: true,
    description:
      'field path to a value or to operators ($eq $ne $gt $gte $lt $lte $in $nin $exists); at most 32 fields',
  });
export type FilterInput = z.input<typeof filterSchema>;

function checkOperand(op: string, value: unknown): string | null {
  if (!OPS.has(op)) return `unknown operator (use ${[...OPS].join(' ')})`;
  if (RANGE.has(op) && typeof value !== 'number' && typeof value !== 'string')
    return 'compares with a number or a string';
  if ((op === '$in' || op === '$nin') && (!Array.isArray(value) || value.length > MAX_IN))
    return `takes an array of at most ${MAX_IN} values`;
  if (op === '$exists' && typeof value !== 'boolean') return 'takes true or false';
  return null;
}

const SQL_OP: Record<string, string> = { $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' };

/** The SQL condition for `clauses` over the jsonb column `column`; "true" when there are none. */
export function filterSql(clauses: FilterClause[], column: string, params: Params): string {
  if (clauses.length === 0) return 'true';
  return clauses
    .map(({ path, op, value }) => {
      const x = `(${column} #> ${params.add(path)}::text[])`;
      switch (op) {
        case '$eq':
          return `${x} = ${params.add(JSON.stringify(value))}::jsonb`;
        case '$ne':
          return `(${x} is null or ${x} <> ${params.add(JSON.stringify(value))}::jsonb)`;
        case '$in':
          return `coalesce(${x} in (select e from jsonb_array_elements(${params.add(JSON.stringify(value))}::jsonb) e), false)`;
        case '$nin':
          return `(${x} is null or ${x} not in (select e from jsonb_array_elements(${params.add(JSON.stringify(value))}::jsonb) e))`;
        case '$exists':
          return value ? `${x} is not null` : `${x} is null`;
        default:
          // CASE, not AND: Postgres may evaluate `x::numeric` first, which fails on a string.
          return typeof value === 'number'
            ? `(case when jsonb_typeof(${x}) = 'number' then ${x}::numeric ${SQL_OP[op]} ${params.add(value)}::numeric else false end)`
            : `(case when jsonb_typeof(${x}) = 'string' then (${x} #>> '{}') collate "C" ${SQL_OP[op]} ${params.add(value)}::text else false end)`;
      }
    })
    .join(' and ');
}
