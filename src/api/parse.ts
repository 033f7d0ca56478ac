import type { z } from 'zod';
import { checked } from '../core/invalid-input.js';

/** One part of a request (`what`: its path, query string or body) by its schema, or a 400 saying what is wrong. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  return checked(schema, value, what);
}
