import type { Tables } from '../sql.js';

/**
 * TTL refresh on read: each item keeps the duration it was given (`ttl_ms`), so a read can set
 * `expires_at = now() + ttl_ms` again. Items written before this migration have no recorded
 * duration and are therefore never refreshed: their duration cannot be recovered (an update by a
 * reflection of a kind without a TTL kept the old expiry while moving `updated_at`), and guessing
 * one would keep memories alive longer than anyone asked. They expire as they always would; a
 * put or reflection update records the duration from then on.
 * A duration only makes sense with an expiry: the check keeps the two together.
 */
export const name = 'ttl-refresh';
export const sql = (t: Tables) => `
alter table ${t.memories} add column ttl_ms bigint;
alter table ${t.memories} add constraint memories_ttl_ms_check check (ttl_ms is null or (ttl_ms > 0 and expires_at is not null));
`;
