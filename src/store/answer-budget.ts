import { LimitError } from '../errors.js';
import type { Row } from './db.js';

/** What a search or a history page past its budget is told to ask for instead. */
export const PAGE_ADVICE = 'ask for a smaller `limit` and page with `offset`';

/** STORE_ANSWER_MAX_BYTES's default, for a StoreService or Recall made without it. */
export const DEFAULT_ANSWER_MAX_BYTES = 32 * 1024 * 1024;

/**
 * The bytes one answer may carry (STORE_ANSWER_MAX_BYTES), spent as its reads come back. A read
 * is cut by Postgres itself (budgeted below): rows past the budget are never sent, so a request of
 * a few kilobytes (a batch of 100 searches, a history page of 1,000 versions) can no longer make
 * an answer of gigabytes in the heap. Spent is what Postgres measured, `octet_length(x::text)` of
 * the stored JSON, before any row crossed into Node: measuring in Node would come after pg had
 * read the whole result.
 */
export class AnswerBudget {
  private spent = 0;

  constructor(
    readonly maxBytes: number,
    /** What to ask for instead, said in the refusal: "fewer ops or a smaller `limit`". */
    private readonly advice: string,
    /**
     * Past the budget, keep the rows that fit instead of refusing: for a ranked list whose best
     * entries are an answer on their own (recall's candidates), not for a page a caller asked
     * for whole.
     */
    readonly fits = false,
  ) {}

  /** What the next read may still return. */
  get remaining(): number {
    return Math.max(0, this.maxBytes - this.spent);
  }

  /**
   * Spends the rows of a read cut by `budgeted` at `remaining`: the last row, the first past the
   * budget if any, carries the running total. Throws the refusal when the read went over.
   */
  spend(rows: Row[]): void {
    this.take(rows);
  }

  /**
   * The rows of a read cut by `budgeted` at `remaining` that the answer carries: all of them when
   * they fit; past the budget, the refusal, or for a budget that `fits`, those that fit (the
   * budget is then spent, and later reads get nothing).
   */
  take<R extends Row>(rows: R[]): R[] {
    const total = rows.length ? Number(rows[rows.length - 1]?.answer_spent ?? 0) : 0;
    if (this.spent + total <= this.maxBytes) {
      this.spent += total;
      return rows;
    }
    if (!this.fits) throw this.refusal();
    const room = this.remaining;
    this.spent = this.maxBytes;
    return rows.filter((r) => Number(r.answer_spent ?? 0) <= room);
  }

  refusal(): LimitError {
    return new LimitError(
      `the answer would be larger than ${this.maxBytes} bytes (STORE_ANSWER_MAX_BYTES) of stored JSON: ${this.advice}`,
      { maxBytes: this.maxBytes },
    );
  }
}

/**
 * `sql` (a select, with its own WITH, ORDER BY and LIMIT if it likes) with its rows cut once they
 * pass `budget` bytes: each row's `measure` (an expression over the result's columns) is summed
 * in `order` (the result's own order, by its column names), and the rows that start within the
 * budget are returned, the first one past it included so that the caller sees the overrun
 * (`answer_spent`). Postgres still ranks every row; it sends the budget's worth.
 */
export function budgeted(sql: string, order: string, measure: string, budget: string): string {
  return `with answer as (${sql}),
   measured as (select answer.*, coalesce(${measure}, 0)::bigint as answer_bytes from answer),
   spent as (select measured.*, sum(answer_bytes) over (order by ${order} rows between unbounded preceding and current row) as answer_spent from measured)
   select * from spent where answer_spent - answer_bytes <= ${budget} order by ${order}`;
}
