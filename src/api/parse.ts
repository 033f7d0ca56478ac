import { z } from 'zod';
import { InputError } from '../errors.js';

/** One part of a request (`what`: its path, query string or body) by its schema, or a 400 saying what is wrong. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new InputError(`invalid ${what}: ${z.prettifyError(parsed.error)}`, parsed.error.issues);
  return parsed.data;
}
