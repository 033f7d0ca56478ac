import { z } from 'zod';

/**
 * A time from outside, as ISO 8601 text with an offset, that Postgres can store: zod's
 * `iso.datetime` alone takes year 0000 and offsets such as +23:59, which a `timestamptz` refuses
 * ("date/time field value out of range", "time zone displacement out of range") only when the
 * write reaches it, as a 500 (or, for a turn's `createdAt`, as a reflection that can never commit).
 */
export const isoTimeSchema = z.iso.datetime({ offset: true }).refine(
  (text) => {
    const offset = /([+-])(\d\d):?(\d\d)$/.exec(text);
    return Number(text.slice(0, 4)) >= 1 && (!offset || Number(offset[2]) <= 15);
  },
  { error: 'must be a time from the year 0001 on, with an offset within ±15:59' },
);
