import { z } from 'zod';

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

/**
 * Every (concrete path, value) a path reaches, lazily: wildcards expand to one entry per element,
 * and a caller that has enough stops the walk (a `[*]` over 50,000 elements is not expanded
 * whole to find that it is too many). Each entry costs its own path once; the recursion is as
 * deep as the path has steps, not as the value is large.
 */
export function* resolvePath(
  value: unknown,
  steps: PathStep[],
  at = 0,
  prefix = '',
): Generator<{ path: string; value: unknown }> {
  if (at === steps.length) {
    if (value !== undefined) yield { path: prefix || '$', value };
    return;
  }
  const step = steps[at] as PathStep;
  if (step === '*') {
    if (!Array.isArray(value)) return;
    for (let i = 0; i < value.length; i++) yield* resolvePath(value[i], steps, at + 1, `${prefix}[${i}]`);
    return;
  }
  if (typeof step === 'number') {
    if (!Array.isArray(value)) return;
    const i = step < 0 ? value.length + step : step;
    if (i >= 0 && i < value.length) yield* resolvePath(value[i], steps, at + 1, `${prefix}[${i}]`);
    return;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.hasOwn(value, step)) return;
  yield* resolvePath((value as Record<string, unknown>)[step], steps, at + 1, prefix ? `${prefix}.${step}` : step);
}

/** A field path as settings (STORE_INDEX_FIELDS) and store calls (`index`) name one. */
export const fieldPathSchema = z
  .string()
  .min(1)
  .max(512)
  .refine((p) => parsePath(p) !== null, 'must be `$` or a path such as `a.b`, `items[0]`, `items[*].text`');
