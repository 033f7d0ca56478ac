import { z } from 'zod';

/** The instants a stored time may take: years 0001 to 9999 in UTC. */
const EARLIEST = Date.parse('0001-01-01T00:00:00.000Z');
const LATEST = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * A time from outside, as ISO 8601 text with an offset, that Postgres can store and engram can
 * give back: zod's `iso.datetime` alone takes year 0000 and offsets such as +23:59, which a
 * `timestamptz` refuses ("date/time field value out of range", "time zone displacement out of
 * range") only when the write reaches it, as a 500 (or, for a turn's `createdAt`, as a reflection
 * that can never commit). The year is checked on the UTC instant, not as written: 9999-12-31 at
 * -15:59 is in year 10000, which Postgres stores but no answer's ISO text or import takes back,
 * so every read of it would fail.
 */
export const isoTimeSchema = z.iso.datetime({ offset: true }).refine(
  (text) => {
    const offset = /([+-])(\d\d):?(\d\d)$/.exec(text);
    const at = Date.parse(text);
    // Not a time at all: the format's own issue says so, alone.
    if (Number.isNaN(at)) return true;
    return at >= EARLIEST && at <= LATEST && (!offset || Number(offset[2]) <= 15);
  },
  { error: 'must be a time in the years 0001 to 9999 in UTC, with an offset within ±15:59' },
);
