import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { intRange } from '../../core/int-range.js';
import { searchModeSchema } from '../../store/schemas.js';

/**
 * The admin pages' inputs: form bodies (application/x-www-form-urlencoded) and query strings,
 * both read by one parser into lists per name, then checked by the schemas below. Names,
 * labels, keys and values are checked again by the store's own schemas when they reach it.
 */
export type Fields = Record<string, string[]>;

/** A form body or query string; a name given twice keeps both values (`ns=a&ns=b`). */
export function formFields(text: string): Fields {
  const fields = new Map<string, string[]>();
  for (const [name, value] of new URLSearchParams(text)) {
    const list = fields.get(name);
    if (list) list.push(value);
    else fields.set(name, [value]);
  }
  // fromEntries defines own properties: a field named `__proto__` stays a field.
  return Object.fromEntries(fields);
}

/**
 * A POST's fields: its action URL's query (which memory or prefix the form acts on), then its
 * body (what was typed or chosen). A form carries its target in the URL because a browser
 * submits every field's line breaks as CRLF: a key or label holding `\n` or `\r`, posted from a
 * hidden field, named another memory, and its edit, delete and revert failed as "No such memory".
 */
export function postedFields(query: Fields, body: Fields): Fields {
  const all = new Map(Object.entries(query));
  for (const [name, values] of Object.entries(body)) all.set(name, [...(all.get(name) ?? []), ...values]);
  // fromEntries, as formFields: a field named `__proto__` stays a field.
  return Object.fromEntries(all);
}

export function queryFields(request: FastifyRequest): Fields {
  const at = request.url.indexOf('?');
  return at < 0 ? {} : formFields(request.url.slice(at + 1));
}

/** One value (an empty one is none); a name given twice is refused. */
const one = z
  .array(z.string())
  .max(1, 'given more than once')
  .optional()
  .transform((a) => (a?.[0] === '' ? undefined : a?.[0]));
const text = (max: number) => one.pipe(z.string().max(max).optional());
const required = (max: number) => one.pipe(z.string({ error: 'is required' }).max(max));
const digits = (min: number, max: number) =>
  z
    .string()
    .transform((s) => (/^\d{1,16}$/.test(s) ? Number(s) : NaN))
    .pipe(intRange(min, max));
const int = (min: number, max: number) => one.pipe(digits(min, max).optional());
const requiredInt = (min: number, max: number) => one.pipe(z.string({ error: 'is required' }).pipe(digits(min, max)));

/** A namespace or prefix, one `ns` per label; the store checks the labels themselves. */
const ns = z.array(z.string().max(256)).max(16, 'at most 16 labels').default([]);
const count = int(0, Number.MAX_SAFE_INTEGER);

/** What a POST did, carried by its redirect as codes and counts (never text) for the next page. */
const notice = {
  done: one.pipe(z.enum(['saved', 'deleted', 'reverted', 'undone', 'erased']).optional()),
  version: count,
  restored: count,
  deleted: count,
  namespaces: count,
  items: count,
  historyRows: count,
  threads: count,
  jobs: count,
};
export type Notice = z.output<z.ZodObject<typeof notice>>;

/**
 * `as of` from a datetime-local field (`2026-12-04T10:30`, read as UTC) or with an offset; the
 * store's schema checks what this hands it.
 */
const asOf = one.pipe(z.string().max(64).optional());
export function asOfIso(value: string): string {
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(value)) return `${value}:00Z`;
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$/.test(value)) return `${value}Z`;
  return value;
}

export const browseQuery = z.strictObject({
  ns,
  q: text(8_000),
  mode: one.pipe(searchModeSchema.default('hybrid')),
  asOf,
  offset: int(0, 100_000),
  nsOffset: int(0, 1_000_000),
  ...notice,
});
/**
 * The search form, posted (its prefix in the URL, as every form's target) and answered with a
 * redirect to the namespace page's URL: a GET form would send the prefix from hidden fields.
 */
export const searchForm = z.strictObject({
  ns,
  q: text(8_000),
  mode: one.pipe(searchModeSchema.default('hybrid')),
  asOf,
});
export const itemQuery = z.strictObject({ ns, key: required(1_024), hoffset: int(0, 1_000_000), ...notice });
export const editForm = z.strictObject({
  ns,
  key: required(1_024),
  value: required(2_000_000),
  ifVersion: requiredInt(0, Number.MAX_SAFE_INTEGER),
});
export const deleteForm = z.strictObject({
  ns,
  key: required(1_024),
  ifVersion: requiredInt(0, Number.MAX_SAFE_INTEGER),
});
export const revertForm = z.strictObject({
  ns,
  key: required(1_024),
  version: requiredInt(1, Number.MAX_SAFE_INTEGER),
  ifVersion: requiredInt(0, Number.MAX_SAFE_INTEGER),
});
/** Undo a job from one memory's history row; `ns` and `key` say where to come back to. */
export const undoForm = z.strictObject({ changedBy: required(200), ns, key: required(1_024) });
/** A user (`userId`, and `tenant` when kinds' namespaces start with it) or a prefix (`ns`, or `labels` one per line). */
const eraseTarget = { ns, labels: text(10_000), userId: text(256), tenant: text(64) };
export const eraseQuery = z.strictObject({ ...eraseTarget, ...notice });
export const eraseForm = z.strictObject({
  ...eraseTarget,
  confirm: one.pipe(z.literal('yes', { error: 'tick the box to confirm the erase' })),
});
export type EraseTarget = z.output<z.ZodObject<typeof eraseTarget>>;

/**
 * CSRF: the pages sit behind basic auth, which a browser sends with any site's request, so a
 * state-changing POST must come from a page of this origin. Browsers send `Origin` with every
 * POST (Referer where an old one does not); a request with neither, or `null`, is refused.
 */
export function sameOrigin(request: FastifyRequest): boolean {
  const from = request.headers.origin ?? request.headers.referer;
  const host = request.headers.host;
  if (!from || !host) return false;
  try {
    return new URL(from).host === host;
  } catch {
    return false;
  }
}
