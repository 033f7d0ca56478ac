import { postgresPoolBusy, postgresUnavailable } from '../dependency-errors.js';
import {
  coerceError,
  ConflictError,
  InputError,
  LimitError,
  ModelOutputError,
  PermanentError,
  UnavailableError,
} from '../errors.js';

/** What an import wrote. */
export interface ImportCounts {
  items: number;
  history: number;
}

/**
 * An import's failure after some of its batches were committed (each batch is one transaction,
 * and they stay): the same failure, of the same class, saying how many items went in and from
 * which line the file is not in. Without it, a model or Postgres lost at batch 3 answered as if
 * nothing was written, and the file sent again was a 409 on its own first key. A failure before
 * any commit is returned as it is: nothing was written.
 */
export function partialImportError(thrown: unknown, done: ImportCounts, line: number): unknown {
  if (done.items === 0) return thrown;
  const said =
    `; ${done.items} items and ${done.history} history rows were imported before it` +
    ` (the file's items before line ${line}); the rest were not`;
  const options = { cause: thrown };
  const imported = { items: done.items, history: done.history };
  if (thrown instanceof ConflictError)
    return new ConflictError(thrown.message + said, { ...(thrown.details as object), imported }, options);
  if (thrown instanceof UnavailableError)
    return new UnavailableError(thrown.dependency, thrown.message + said, options);
  if (thrown instanceof ModelOutputError) return new ModelOutputError(thrown.reason, thrown.message + said, options);
  if (thrown instanceof LimitError) return new LimitError(thrown.message + said, thrown.details, options);
  if (thrown instanceof InputError) return new InputError(thrown.message + said, thrown.details, options);
  const err = coerceError(thrown);
  // pg's own errors, which the API would answer 503 by their message: said here, they need a class.
  if (postgresPoolBusy(err) || postgresUnavailable(err))
    return new UnavailableError(
      'postgres',
      `the memory store (Postgres) failed the import (${err.message})${said}`,
      options,
    );
  return new PermanentError(`the import failed (${err.message})${said}`, options);
}
