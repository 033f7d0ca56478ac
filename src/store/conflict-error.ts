import { ConflictError } from '../errors.js';
import type { Conflict } from './change-plan.js';

/** A stale `ifVersion` or revert: the message names the first item, `details` lists them all. */
export function conflictError(conflicts: Conflict[]): ConflictError {
  const first = conflicts[0] as Conflict;
  const what = `${JSON.stringify(first.namespace)} / ${JSON.stringify(first.key)}`;
  const more = conflicts.length > 1 ? ` (and ${conflicts.length - 1} more)` : '';
  const message =
    first.reason === 'gone'
      ? `conflict: the document a revert of ${what} would put back is gone (the memory expired or was erased)${more}`
      : first.reason === 'changed'
        ? `conflict: ${what} changed since the revert read it (now at version ${first.actual})${more}`
        : `version conflict: ${what} is at version ${first.actual}, not ${first.expected}${more}`;
  return new ConflictError(message, { conflicts });
}
