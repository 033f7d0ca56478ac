import type { Tables } from '../sql.js';

/**
 * History keeps the validity each change left: `valid_from` and `invalid_at` of the memory as
 * the row's change wrote it (both null on a row that removed it). A revert to a version then puts
 * back the document and its validity: reverting to an invalidation leaves the fact invalid, from
 * when it stopped holding. Rows from before this migration: an invalidation takes its memory's
 * validity when the memory is still at that version, else the row's own time as `invalid_at` (a
 * reflection dates an invalidation by its turns, which the row did not keep); other rows stay
 * null, which a revert reads as "holds, since when it holds now" (every put made a memory hold).
 */
export const name = 'history-validity';
/** The memory still at the invalidation's version, and invalid: its times are the row's. */
const SAME = 'where m.namespace = h.namespace and m.key = h.key and m.version = h.version and m.invalid_at is not null';
export const sql = (t: Tables) => `
alter table ${t.history} add column valid_from timestamptz;
alter table ${t.history} add column invalid_at timestamptz;
update ${t.history} h
   set invalid_at = coalesce((select m.invalid_at from ${t.memories} m ${SAME}), h.created_at),
       valid_from = (select m.valid_from from ${t.memories} m ${SAME})
 where h.op = 'invalidate';
`;
