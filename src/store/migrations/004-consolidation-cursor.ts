import type { Tables } from '../sql.js';

/**
 * Consolidation's place in each namespace, as a (change time, key) cursor: memories written in
 * one transaction share their `updated_at`, so a time alone cannot say how far a pass got
 * through them. `consolidation_tried_at` rotates the namespaces a pass picks, so that ones whose
 * pass keeps failing do not hold the front of the queue.
 */
export const name = 'consolidation-cursor';
export const sql = (t: Tables) => `
alter table ${t.namespaces} add column consolidated_key text not null default '';
alter table ${t.namespaces} add column consolidation_tried_at timestamptz;
`;
