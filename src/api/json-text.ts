import { z } from 'zod';
import { JSON_MAX_DEPTH, jsonProblem } from '../core/json-bounds.js';

/**
 * JSON sent as text where a body cannot carry it (a header, a query parameter): parsed, then
 * walked with a body's bounds (json-body.ts). Without the walk, the context schema's record
 * would drop a `__proto__` key silently, where a body holding one is refused by name. `name`
 * (`x-engram-context`, `context`) starts each message, which says what to send instead.
 */
export function jsonText(name: string) {
  return z.string().transform((text, ctx) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      ctx.addIssue({ code: 'custom', message: `${name} must be a JSON object, such as {"userId":"u1"}` });
      return z.NEVER;
    }
    const problem = jsonProblem(value, { maxDepth: JSON_MAX_DEPTH });
    if (problem) {
      ctx.addIssue({ code: 'custom', path: problem.path, message: `${name} ${problem.message}` });
      return z.NEVER;
    }
    return value;
  });
}
