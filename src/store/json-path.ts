/**
 * Paths into a JSON value, as LangGraph's index `fields` spell them: `a.b`, `items[0].text`,
 * `items[-1]`, `items[*].text` (every element). `$` is the whole value.
 */
/** A key, an index, or `'*'`: every element of an array. */
export type PathStep = string | number;

const STEP = /^([^.[\]]+)?((?:\[(?:-?\d+|\*)\])*)$/;

/** Parses a path; returns null when it is malformed. */
export function parsePath(path: string): PathStep[] | null {
  if (path === '$') return [];
  const steps: PathStep[] = [];
  for (const part of path.split('.')) {
    const m = STEP.exec(part);
    if (!m || (!m[1] && !m[2])) return null;
    if (m[1]) steps.push(m[1]);
    for (const [, index] of (m[2] ?? '').matchAll(/\[(-?\d+|\*)\]/g)) {
      steps.push(index === '*' ? '*' : Number(index));
    }
  }
  return steps;
}

/** Every (concrete path, value) a path reaches; wildcards expand to one entry per element. */
export function resolvePath(value: unknown, steps: PathStep[], prefix = ''): { path: string; value: unknown }[] {
  if (steps.length === 0) return value === undefined ? [] : [{ path: prefix || '$', value }];
  const [step, ...rest] = steps as [PathStep, ...PathStep[]];
  if (step === '*') {
    if (!Array.isArray(value)) return [];
    return value.flatMap((v, i) => resolvePath(v, rest, `${prefix}[${i}]`));
  }
  if (typeof step === 'number') {
    if (!Array.isArray(value)) return [];
    const i = step < 0 ? value.length + step : step;
    return i >= 0 && i < value.length ? resolvePath(value[i], rest, `${prefix}[${i}]`) : [];
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.hasOwn(value, step)) return [];
  return resolvePath((value as Record<string, unknown>)[step], rest, prefix ? `${prefix}.${step}` : step);
}
