import { postgresUnavailable } from '../dependency-errors.js';
import type { Logger } from '../observability/logger.js';

/** Tries of a reflection's commit, and the waits between them. */
const WAITS_MS = [250, 1_000];

/**
 * A reflection's commit, tried again when Postgres could not be had: a full pool's wait ran out
 * (a worker runs far more reflections than it has connections, since most of a reflection is the
 * model's time), or a connection was lost. The model's decision is already paid for; failing the
 * job would ask the model again on its retry, and a busy worker would then make more than one
 * extraction call per session. Trying the commit again is safe even when a lost connection had
 * committed: the thread cursor's compare-and-set answers 'duplicate' and the turns are not
 * applied twice. Anything else, or Postgres still away after the last wait, fails as before.
 */
export async function commitWithRetry<T>(commit: () => Promise<T>, log: Logger, signal?: AbortSignal): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await commit();
    } catch (err) {
      const wait = WAITS_MS[attempt];
      if (wait === undefined || !(err instanceof Error) || !postgresUnavailable(err)) throw err;
      log.warn(
        { err, attempt: attempt + 1, retryInMs: wait },
        'reflection commit could not reach postgres; trying again',
      );
      await new Promise((resolve) => setTimeout(resolve, wait));
      signal?.throwIfAborted();
    }
  }
}
