import type { z } from 'zod';
import { textProblem } from './safe-text.js';

/**
 * One walk over a JSON value that says what is wrong with it, if anything, before any recursive
 * code sees it. It keeps its own stack: a body nested 100,000 levels deep (a 200 KB request) is
 * parsed by JSON.parse without trouble, and then overflowed every recursive walk after it
 * (zod's `z.json()`, a NUL scan, `JSON.stringify` in an error message) into a 500.
 */

/**
 * How deep a stored value or a filter may nest. Documents and profiles nest a few levels; 64
 * leaves room for any of them and keeps every recursive step after the check (JSON.stringify,
 * jsonb) far from the stack's limit.
 */
export const JSON_MAX_DEPTH = 64;

export interface JsonBounds {
  /** Arrays and objects inside one another, the value itself counting as the first. */
  maxDepth: number;
  /** Whether strings and keys must be storable text (no NUL, no lone surrogate). */
  text?: boolean;
  /** The value must be a plain object, with at most this many keys when given. */
  object?: { maxKeys?: number };
  /** At most this many characters as JSON text. */
  maxChars?: number;
}

export interface JsonProblem {
  path: (string | number)[];
  message: string;
}

interface Node {
  value: unknown;
  depth: number;
  parent: Node | null;
  key: string | number;
}

function pathOf(node: Node): (string | number)[] {
  const path: (string | number)[] = [];
  for (let n: Node | null = node; n?.parent; n = n.parent) path.push(n.key);
  return path.reverse();
}

/** The first thing wrong with `value` under `bounds`, or null. */
export function jsonProblem(value: unknown, bounds: JsonBounds): JsonProblem | null {
  if (bounds.object) {
    if (!isPlainObject(value)) return { path: [], message: 'must be a JSON object' };
    const keys = Object.keys(value).length;
    const max = bounds.object.maxKeys;
    if (max !== undefined && keys > max) return { path: [], message: `must have at most ${max} keys, not ${keys}` };
  }
  const found = walk(value, bounds);
  if (found) return found;
  if (bounds.maxChars !== undefined) {
    // Safe now: the walk bounded the depth JSON.stringify recurses to.
    const chars = JSON.stringify(value).length;
    if (chars > bounds.maxChars)
      return { path: [], message: `must be at most ${bounds.maxChars} characters of JSON, not ${chars}` };
  }
  return null;
}

function walk(value: unknown, bounds: JsonBounds): JsonProblem | null {
  const stack: Node[] = [{ value, depth: 1, parent: null, key: '' }];
  for (let node = stack.pop(); node; node = stack.pop()) {
    const v = node.value;
    const at = (message: string, key?: string) => ({
      path: key === undefined ? pathOf(node) : [...pathOf(node), key],
      message,
    });
    if (v === null || typeof v === 'boolean') continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return at('must be a finite number (JSON has no NaN or Infinity)');
      continue;
    }
    if (typeof v === 'string') {
      const problem = bounds.text ? textProblem(v) : null;
      if (problem) return at(problem);
      continue;
    }
    if (typeof v !== 'object') return at(`must be plain JSON, not ${v === undefined ? 'undefined' : `a ${typeof v}`}`);
    if (node.depth > bounds.maxDepth)
      // Named by where it starts: the whole path would be as long as the nesting.
      return {
        path: pathOf(node).slice(0, 2),
        message: `nests deeper than ${bounds.maxDepth} levels of arrays and objects`,
      };
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], depth: node.depth + 1, parent: node, key: i });
      continue;
    }
    if (!isPlainObject(v)) return at('must be plain JSON (no Dates, Maps or class instances)');
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i] as string;
      if (key === '__proto__')
        return at(
          'has a key "__proto__", which is refused: JavaScript objects take it for their prototype, so it would be lost; rename it',
        );
      const problem = bounds.text ? textProblem(key) : null;
      if (problem) return at(`keys ${problem}`, key);
      stack.push({ value: v[key], depth: node.depth + 1, parent: node, key });
    }
  }
  return null;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** `ops[0].value.a`: a problem's path as a caller writes it. */
export function formatPath(path: (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** A zod check running `jsonProblem`: one issue at most, and nothing after it runs. */
export function jsonCheck(bounds: JsonBounds): z.core.CheckFn<unknown> {
  return (ctx) => {
    const problem = jsonProblem(ctx.value, bounds);
    if (problem)
      ctx.issues.push({
        code: 'custom',
        input: ctx.value,
        path: problem.path,
        message: problem.message,
        continue: false,
      });
  };
}
