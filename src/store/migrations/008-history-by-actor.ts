import type { Tables } from '../sql.js';

/** Reverting everything one job changed reads its history rows by actor. */
export const name = 'history-by-actor';
export const sql = (t: Tables) => `
create index on ${t.history} (actor, id);
`;
