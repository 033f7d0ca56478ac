export interface DiffRow {
  /** `content`, `tags[0]`, `address.city`: where in the document. */
  path: string;
  change: 'added' | 'removed' | 'changed';
  before?: unknown;
  after?: unknown;
}

/** The rows a history entry shows; `more` when the documents differ in more places than that. */
export interface DocumentDiff {
  rows: DiffRow[];
  more: boolean;
}

/** Changes shown per history entry: a page shows up to 50 entries of documents up to 1 MB. */
export const DIFF_ROWS = 100;

type Json = Record<string, unknown> | unknown[];

/**
 * One history row's change, field by field: a missing document (insert, delete) counts as `{}`.
 * The walk stops at `max` rows: two versions of a list of 120,000 numbers differ in 120,000
 * places, and rendering every one made a page of tens of megabytes whose building held the
 * API's event loop for seconds. Keys and indexes come in the documents' order: what the first
 * document has (removed, changed, or looked into), then what only the second has (added).
 */
export function documentDiff(
  before: Record<string, unknown> | null,
  after: Record<string, unknown> | null,
  max = DIFF_ROWS,
): DocumentDiff {
  const rows: DiffRow[] = [];
  let more = false;
  // False once the rows are full and another change is found: every loop then stops.
  const push = (row: DiffRow): boolean => {
    if (rows.length >= max) more = true;
    else rows.push(row);
    return !more;
  };
  const compare = (x: unknown, y: unknown, path: string): boolean =>
    isContainer(x) && isContainer(y) && Array.isArray(x) === Array.isArray(y)
      ? walk(x, y, path)
      : Object.is(x, y) || push({ path, change: 'changed', before: x, after: y });
  const walk = (a: Json, b: Json, path: string): boolean => {
    if (Array.isArray(a) && Array.isArray(b)) {
      // By index: Object.keys of a list of 100,000 numbers makes as many strings.
      for (let i = 0; i < a.length; i++) {
        const ok =
          i < b.length
            ? compare(a[i], b[i], `${path}[${i}]`)
            : push({ path: `${path}[${i}]`, change: 'removed', before: a[i] });
        if (!ok) return false;
      }
      for (let i = a.length; i < b.length; i++)
        if (!push({ path: `${path}[${i}]`, change: 'added', after: b[i] })) return false;
      return true;
    }
    const x = a as Record<string, unknown>;
    const y = b as Record<string, unknown>;
    for (const k of Object.keys(x)) {
      const at = path + segment(k, path === '');
      const ok = Object.hasOwn(y, k) ? compare(x[k], y[k], at) : push({ path: at, change: 'removed', before: x[k] });
      if (!ok) return false;
    }
    for (const k of Object.keys(y))
      if (!Object.hasOwn(x, k) && !push({ path: path + segment(k, path === ''), change: 'added', after: y[k] }))
        return false;
    return true;
  };
  walk(before ?? {}, after ?? {}, '');
  return { rows, more };
}

const isContainer = (v: unknown): v is Json => typeof v === 'object' && v !== null;

/** A key's part of a path: `.name`, or `["odd key"]` for one that is no identifier. */
function segment(p: string, first: boolean): string {
  return /^[A-Za-z_$][\w$]*$/.test(p) ? `${first ? '' : '.'}${p}` : `[${JSON.stringify(p)}]`;
}

/** A value as one line of JSON, cut at `max` characters (the page links to the whole document). */
export function jsonPreview(value: unknown, max = 300): string {
  const text = JSON.stringify(value) ?? 'undefined';
  if (text.length <= max) return text;
  // Never half a surrogate pair: the page would show a replacement character.
  const cut = text.slice(0, max - 1);
  return `${/[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut}…`;
}
