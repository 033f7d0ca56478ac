import { LimitError } from '../../errors.js';

/**
 * A page of a store read that fits the answer budget (STORE_ANSWER_MAX_BYTES): `size` rows, or
 * a quarter as many while the store refuses the page as too large, down to one row (which always
 * fits: the budget is at least 8 MiB). Fifty versions of a memory of a few hundred kilobytes
 * pass 32 MiB of history; the page then showed only the refusal, and the memory could not be
 * read, edited or deleted here at all. The caller pages on by the size that was read.
 */
export async function fittedPage<T>(size: number, read: (limit: number) => Promise<T[]>): Promise<Fitted<T>> {
  for (let limit = size; ; limit = Math.max(1, Math.floor(limit / 4))) {
    try {
      return { rows: await read(limit), size: limit };
    } catch (err) {
      if (!(err instanceof LimitError) || limit === 1) throw err;
    }
  }
}

export interface Fitted<T> {
  rows: T[];
  /** The page size that was read: where the next page starts. */
  size: number;
}
