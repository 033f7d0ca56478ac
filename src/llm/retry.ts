import OpenAI from 'openai';
import { PermanentError, RetryableError } from '../errors.js';

/**
 * How model requests are retried. We retry ourselves (the SDK runs with `maxRetries: 0`) because
 * the SDK's own loop sleeps through an abort and obeys any Retry-After, however long: a provider
 * saying "come back in 10 minutes" would pin a worker slot. Here the wait is abortable and capped;
 * past the cap the job fails as retryable and BullMQ's backoff takes over without holding a slot.
 */
export interface RetryPolicy {
  /** Retries after the first attempt (0: one attempt only). */
  maxRetries: number;
  /** First backoff step; doubles per retry, half of it randomised (equal jitter). */
  baseDelayMs: number;
  /** Ceiling of one backoff step and of an honoured Retry-After. */
  maxDelayMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { maxRetries: 3, baseDelayMs: 500, maxDelayMs: 20_000 };

type Verdict = { retry: true; afterMs?: number } | { retry: false };

/** 408, 409 (provider lock timeouts), 429, 5xx and connection failures (timeouts included) are transient. */
export function classify(err: unknown): Verdict {
  if (err instanceof OpenAI.APIUserAbortError) return { retry: false };
  if (err instanceof OpenAI.APIConnectionError) return { retry: true };
  if (err instanceof OpenAI.APIError && typeof err.status === 'number') {
    const s = err.status;
    if (s === 408 || s === 409 || s === 429 || s >= 500)
      return { retry: true, ...retryAfter(err.headers as Headers | undefined) };
  }
  return { retry: false };
}

/**
 * Runs one model request with bounded, jittered, abortable retries. Errors come out as the
 * house's classes: RetryableError when the job may succeed later, PermanentError when a retry
 * would fail the same way (400, 401, 404: bad request, key or model), the abort reason on abort.
 */
export async function withRetry<T>(
  what: string,
  attempt: () => Promise<T>,
  policy: RetryPolicy,
  signal?: AbortSignal,
  onRetry?: (info: { attempt: number; delayMs: number; err: unknown }) => void,
): Promise<T> {
  for (let n = 0; ; n++) {
    signal?.throwIfAborted();
    try {
      return await attempt();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const verdict = classify(err);
      if (!verdict.retry) {
        if (err instanceof OpenAI.APIError)
          throw new PermanentError(`${what} was refused: ${err.message}`, { cause: err });
        throw err;
      }
      if (n >= policy.maxRetries) {
        throw new RetryableError(`${what} failed after ${n + 1} attempt(s): ${(err as Error).message}`, { cause: err });
      }
      const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** n);
      const delayMs = verdict.afterMs ?? step / 2 + Math.random() * (step / 2);
      if (delayMs > policy.maxDelayMs) {
        throw new RetryableError(
          `${what}: the provider asks to wait ${Math.round(delayMs)} ms, more than ${policy.maxDelayMs} ms`,
          { cause: err },
        );
      }
      onRetry?.({ attempt: n + 1, delayMs, err });
      await sleep(delayMs, signal);
    }
  }
}

/** `retry-after-ms` (OpenAI, Azure) or `retry-after` in seconds or as an HTTP date. */
function retryAfter(headers: Headers | undefined): { afterMs?: number } {
  const ms = Number.parseFloat(headers?.get('retry-after-ms') ?? '');
  if (Number.isFinite(ms) && ms >= 0) return { afterMs: ms };
  const raw = headers?.get('retry-after');
  if (!raw) return {};
  const seconds = Number.parseFloat(raw);
  if (Number.isFinite(seconds) && seconds >= 0) return { afterMs: seconds * 1000 };
  const date = Date.parse(raw);
  return Number.isFinite(date) ? { afterMs: Math.max(0, date - Date.now()) } : {};
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
