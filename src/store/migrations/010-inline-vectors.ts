import type { Tables } from '../sql.js';

/**
 * Vectors inline in their rows. pgvector's types store EXTERNAL: past Postgres' 2 KB toast
 * target a 1536-dimension vector (6 KB) goes out of line, in four chunks of the toast table and
 * four entries of its index, so a put writes nine tuples instead of one and an exact search
 * reads each candidate through the toast index. With the table's target at its maximum, a row
 * up to a page stays whole (a bigger one, a very long text say, is still toasted, as before).
 * Measured in `docs/performance.md` (bench:store: puts and per-namespace search). Rows written
 * before this migration stay out of line until rewritten (`VACUUM FULL` on the table, which
 * locks it: `docs/operations.md`).
 */
export const name = 'inline-vectors';
export const sql = (t: Tables) => `alter table ${t.vectors} set (toast_tuple_target = 8160);`;
