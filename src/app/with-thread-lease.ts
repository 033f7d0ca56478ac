import type { Logger } from '../observability/logger.js';
import type { LeaseState, ThreadLease } from '../queue/thread-lease.js';

/** The thread got new turns and its policy is `rollback`: give way to one reflection of all turns. */
export class Superseded extends Error {
  override name = 'Superseded';
}

/** Another process took the thread's lease (ours expired): committing now could race it. */
export class LeaseLost extends Error {
  override name = 'LeaseLost';
}

export interface HeldLease {
  /** Aborted when the lease is lost, the thread is superseded, or the caller's signal fires. */
  signal: AbortSignal;
  /** Renews the lease and throws if committing now would be wrong (call right before a commit). */
  check: () => Promise<void>;
}

/**
 * Runs `work` while holding a thread's lease (taken as `start`): renewed every third of its
 * life in the background, which aborts the work as soon as the lease is lost or (under
 * `rollback`) a new turn arrives, and released at the end whatever happens. When the work
 * fails after an abort, the abort's reason is what is thrown (Superseded, LeaseLost, or the
 * caller's reason such as a shutdown).
 */
export async function withThreadLease<T>(
  lease: ThreadLease,
  held: { threadId: string; owner: string; start: LeaseState; signal?: AbortSignal | undefined; log: Logger },
  work: (lease: HeldLease) => Promise<T>,
): Promise<T> {
  const { threadId, owner, start, signal, log } = held;
  const controller = new AbortController();
  const forward = () => controller.abort(signal?.reason);
  signal?.addEventListener('abort', forward, { once: true });
  // A shutdown that came while the lease was being taken has fired already.
  if (signal?.aborted) forward();
  const problem = (s: LeaseState): Error | null => {
    if (!s.held) return new LeaseLost(`lease of thread ${threadId} lost`);
    // A thread past its maxWait commits anyway: otherwise a never-quiet thread under
    // `rollback` would abort forever (invariant 5).
    if (s.policy === 'rollback' && s.gen !== start.gen && !s.overdue)
      return new Superseded(`thread ${threadId} got new turns`);
    return null;
  };
  const renew = () =>
    lease.renew(threadId, owner).then(
      (s) => {
        const p = problem(s);
        if (p && !controller.signal.aborted) controller.abort(p);
      },
      (err: unknown) => log.warn({ err }, 'lease renewal failed'),
    );
  const heartbeat = setInterval(() => void renew(), Math.max(100, Math.floor(lease.leaseMs / 3)));
  try {
    return await work({
      signal: controller.signal,
      check: async () => {
        const p = problem(await lease.renew(threadId, owner));
        if (p) throw p;
      },
    });
  } catch (err) {
    throw controller.signal.aborted && !(err instanceof Superseded) ? controller.signal.reason : err;
  } finally {
    clearInterval(heartbeat);
    signal?.removeEventListener('abort', forward);
    await lease.release(threadId, owner).catch((err: unknown) => log.warn({ err }, 'lease release failed'));
  }
}
