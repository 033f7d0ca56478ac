/** A dependency that did not answer in time (stalled rather than refused). */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** `work`, or a TimeoutError once `ms` pass without an answer (a stalled dependency); the timer is cleared either way. */
export function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
