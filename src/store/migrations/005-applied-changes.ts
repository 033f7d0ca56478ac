import type { Tables } from '../sql.js';

/**
 * Idempotency keys of applied change sets that are not a thread's turns (a thread's cursor is
 * its own key): the prompt optimizer's run id, a client's retried request. A key is taken in
 * the transaction that applies its change, so a retry after a commit applies nothing.
 */
export const name = 'applied-changes';
export const sql = (t: Tables) => `
create table ${t.appliedChanges} (
  key text primary key,
  applied_at timestamptz not null default now()
);
`;
