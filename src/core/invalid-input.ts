import { z } from 'zod';
import { InputError } from '../errors.js';

/**
 * Issues one refusal reports. A batch of 1,000 broken ops made a 13 KB request answer with a
 * 550 KB list of its 5,000 issues; the first ones say what to fix, and the count says how much.
 */
export const MAX_ISSUES = 20;

/** The InputError for input `schema.safeParse` refused: `invalid <what>: <its first issues>`. */
export function invalidInput(what: string, error: z.ZodError): InputError {
  const issues = error.issues.slice(0, MAX_ISSUES);
  const more = error.issues.length - issues.length;
  const text = z.prettifyError(new z.ZodError(issues)) + (more ? `\n(and ${more} more issues)` : '');
  return new InputError(`invalid ${what}: ${text}`, issues);
}

/** The input as `schema` reads it, or the InputError above: `invalid <what>: <its first issues>`. */
export function checked<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw invalidInput(what, parsed.error);
  return parsed.data;
}
