import { z } from 'zod';
import { invalidInput } from '../core/invalid-input.js';

/** One part of a request (`what`: its path, query string or body) by its schema, or a 400 saying what is wrong. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw invalidInput(what, parsed.error);
  return parsed.data;
}
