import microdiff from 'microdiff';

export interface DiffRow {
  /** `content`, `tags[0]`, `address.city`: where in the document. */
  path: string;
  change: 'added' | 'removed' | 'changed';
  before?: unknown;
  after?: unknown;
}

/** One history row's change, field by field: a missing document (insert, delete) counts as `{}`. */
export function documentDiff(before: Record<string, unknown> | null, after: Record<string, unknown> | null): DiffRow[] {
  return microdiff(before ?? {}, after ?? {}).map((d) => {
    const path = formatPath(d.path);
    // microdiff types values as `any`; they are JSON values from the history row.
    if (d.type === 'CREATE') return { path, change: 'added', after: d.value as unknown };
    if (d.type === 'REMOVE') return { path, change: 'removed', before: d.oldValue as unknown };
    return { path, change: 'changed', before: d.oldValue as unknown, after: d.value as unknown };
  });
}

function formatPath(path: (string | number)[]): string {
  return path
    .map((p, i) =>
      typeof p === 'number'
        ? `[${p}]`
        : /^[A-Za-z_$][\w$]*$/.test(p)
          ? `${i ? '.' : ''}${p}`
          : `[${JSON.stringify(p)}]`,
    )
    .join('');
}

/** A value as one line of JSON, cut at `max` characters (the page links to the whole document). */
export function jsonPreview(value: unknown, max = 300): string {
  const text = JSON.stringify(value) ?? 'undefined';
  if (text.length <= max) return text;
  // Never half a surrogate pair: the page would show a replacement character.
  const cut = text.slice(0, max - 1);
  return `${/[\uD800-\uDBFF]$/.test(cut) ? cut.slice(0, -1) : cut}…`;
}
