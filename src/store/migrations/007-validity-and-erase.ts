import type { Tables } from '../sql.js';

/**
 * Facts that keep their time, and erase (issue 16).
 * - `valid_from` / `invalid_at`: when a memory became true and when a later conversation said it
 *   no longer was. An invalidated memory stays (search leaves it out unless asked `asOf` a time
 *   it was valid), so "what did the user like in January" has an answer. `invalidated_by` is the
 *   actor of the change that invalidated it. Rows from before this migration were valid from
 *   their creation.
 * - History gains `invalidate`.
 * - `erasures`: one content-free audit row per erase: who, when, what scope, how many rows.
 */
export const name = 'validity-and-erase';
export const sql = (t: Tables) => `
alter table ${t.memories} add column valid_from timestamptz;
alter table ${t.memories} add column invalid_at timestamptz;
alter table ${t.memories} add column invalidated_by text;
update ${t.memories} set valid_from = created_at;
alter table ${t.memories} alter column valid_from set default now();
alter table ${t.memories} alter column valid_from set not null;

alter table ${t.history} drop constraint if exists memory_history_op_check;
alter table ${t.history} add constraint memory_history_op_check
  check (op in ('insert', 'update', 'delete', 'expire', 'invalidate'));

create table ${t.erasures} (
  id bigserial primary key,
  actor text not null,
  scope jsonb not null,
  counts jsonb not null,
  at timestamptz not null default now()
);
`;
