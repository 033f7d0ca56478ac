import type { Histogram } from 'prom-client';

/** A failure's class as a label: few values, known in advance (never a message). */
export function outcomeOf(err: unknown): string {
  if (!(err instanceof Error)) return 'error';
  switch (err.name) {
    case 'AbortError':
      return 'aborted';
    case 'UnavailableError':
      return 'unavailable';
    case 'ModelOutputError':
      return 'invalid-output';
    case 'InputError':
    case 'LimitError':
      return 'bad-input';
    default:
      return err.name === 'PermanentError' ? 'refused' : 'error';
  }
}

/**
 * `target`, with `method` observed: each call's duration goes to `histogram` with `labels` and
 * its outcome (`ok` or outcomeOf). The composition root instruments the model clients and the
 * searches this way, so that the modules they live in stay free of metrics; the target itself
 * is left as it is (a test's embedder may serve several runtimes).
 */
export function instrumented<T extends object, K extends keyof T>(
  target: T,
  method: K,
  histogram: Histogram<string>,
  labels: Record<string, string>,
): T {
  const original = target[method] as unknown as (...args: unknown[]) => Promise<unknown>;
  const wrapped = async (...args: unknown[]) => {
    const end = histogram.startTimer(labels);
    try {
      const result = await original.apply(target, args);
      // An answer made without one of its parts (a recall ranked by text alone) counts apart.
      const degraded = typeof result === 'object' && result !== null && 'degraded' in result;
      end({ outcome: degraded ? 'degraded' : 'ok' });
      return result;
    } catch (err) {
      end({ outcome: outcomeOf(err) });
      throw err;
    }
  };
  return new Proxy(target, {
    get(t, key) {
      if (key === method) return wrapped;
      const value = Reflect.get(t, key, t) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value;
    },
  });
}
