import { z } from 'zod';

/**
 * A whole number from `min` to `max`, with one message naming both for anything else. zod's own
 * `int()` answers a huge number (1e308) with "expected int to be <= 9007199254740991", the safe
 * integer bound rather than the field's, and a query-string value ("1e308", "lots", "0x10") with
 * a type error: the caller needs the range.
 */
export function intRange(min: number, max: number) {
  return (
    z
      .custom<number>(
        (v) => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max,
        `must be a whole number from ${min} to ${max}`,
      )
      // What the custom check means, for the OpenAPI document (a custom schema has no JSON Schema).
      .meta({ type: 'integer', minimum: min, maximum: max })
  );
}
