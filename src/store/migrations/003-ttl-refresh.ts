import type { Tables } from '../sql.js';

/**
 * TTL refresh on read: each item keeps the duration it was given (`ttl_ms`), so a read can set
 * `expires_at = now() + ttl_ms` again. Items written before this migration have no recorded
 * duration and are therefore never refreshed: their duration cannot be recovered (an update by a
 * reflection of a kind without a TTL kept the old expiry while moving `updated_at`), and guessing
 * one would keep memories alive longer than anyone asked. They expire as they always would; a
 * put or reflection update records the duration from then on.
 * No CHECK ties the duration to an expiry: processes from before this migration keep running
 * during a rolling deploy and write rows without touching `ttl_ms`, which such a check would
 * turn into failed puts. The refresh only renews rows that have an expiry.
 */
export const name = 'ttl-refresh';
export const sql = (t: Tables) => `
alter table ${t.memories} add column ttl_ms bigint;
`;
