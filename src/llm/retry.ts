import OpenAI from 'openai';
import { retryAfterMs } from '../core/retry-after.js';
import { ModelOutputError, PermanentError, RetryableError, UnavailableError } from '../errors.js';

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
 * house's classes: UnavailableError (retryable) when the job may succeed later, ModelOutputError
 * when the provider refused what it was shown (a content filter, a prompt too long),
 * PermanentError when a retry would fail the same way (400, 401, 404: bad request, key or
 * model), the abort reason on abort.
 */
export async function withRetry<T>(
  /**
   * `what` names the model in errors (`chat model gpt-4o-mini`); `baseURL` is where it was asked;
   * `timeoutMs` bounds each attempt, its answer's body included (see `within`).
   */
  model: { what: string; dependency: 'chat-model' | 'embedding-model'; baseURL: string; timeoutMs: number },
  /** One HTTP request, given the signal to send it with (the caller's, ending at the attempt's bound too). */
  attempt: (signal: AbortSignal) => Promise<T>,
  policy: RetryPolicy,
  signal?: AbortSignal,
  onRetry?: (info: { attempt: number; delayMs: number; err: unknown }) => void,
): Promise<T> {
  const { what, dependency, baseURL } = model;
  for (let n = 0; ; n++) {
    signal?.throwIfAborted();
    try {
      return await within(model.timeoutMs, signal, attempt);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const verdict = classify(err);
      if (err instanceof SyntaxError) throw notJson(`${what} at ${baseURL}`, err);
      if (!verdict.retry) throw refused(what, err);
      if (n >= policy.maxRetries) {
        throw new UnavailableError(dependency, `${what} failed after ${n + 1} attempt(s): ${(err as Error).message}`, {
          cause: err,
        });
      }
      const step = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** n);
      const delayMs = verdict.afterMs ?? step / 2 + Math.random() * (step / 2);
      if (delayMs > policy.maxDelayMs) {
        throw new UnavailableError(
          dependency,
          `${what}: the provider asks to wait ${Math.round(delayMs)} ms, more than ${policy.maxDelayMs} ms`,
          { cause: err },
        );
      }
      onRetry?.({ attempt: n + 1, delayMs, err });
      await sleep(delayMs, signal);
    }
  }
}

/** setTimeout's longest delay: a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs one attempt with a signal that also ends `timeoutMs` after it started, and fails it then
 * as the SDK fails a request whose headers are late (APIConnectionTimeoutError: retryable, and
 * an unreachable endpoint to the outage probe). The SDK's own timeout stops at the headers: a
 * server that sent them and then trickled its body, a byte a second, held the attempt, and the
 * job's worker slot, for good. Ended by this signal, the SDK throws an APIUserAbortError before
 * the headers or the fetch's AbortError while reading the body; both mean the same here.
 */
async function within<T>(
  timeoutMs: number,
  signal: AbortSignal | undefined,
  attempt: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const limit = new AbortController();
  const timer = setTimeout(
    () => limit.abort(new OpenAI.APIConnectionTimeoutError()),
    Math.min(timeoutMs, MAX_TIMER_MS),
  );
  try {
    return await attempt(signal ? AbortSignal.any([signal, limit.signal]) : limit.signal);
  } catch (err) {
    // The caller's abort stays the caller's (withRetry rethrows its reason).
    if (limit.signal.aborted && !signal?.aborted) throw limit.signal.reason;
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A success status whose body the SDK could not parse (a base URL that reaches a web page or a
 * proxy's error page instead of the API): JSON.parse's message alone named neither the model
 * nor where it was asked. Retryable, as it was: a proxy's hiccup passes, and a wrong base URL
 * fails every attempt, visibly, with this message.
 */
function notJson(where: string, err: SyntaxError): RetryableError {
  return new RetryableError(`${where}: answered 200 with a body that is not JSON: ${err.message}`, { cause: err });
}

/**
 * A refusal the next attempt would get too. OpenAI and Azure say why in the error's code: a
 * content filter on the prompt, or a prompt longer than the model's context.
 */
function refused(what: string, err: unknown): unknown {
  if (!(err instanceof OpenAI.APIError)) return err;
  const message = `${what} was refused: ${err.message}`;
  if (err.code === 'content_filter') return new ModelOutputError('content-filter', message, { cause: err });
  if (err.code === 'context_length_exceeded') return new ModelOutputError('too-long', message, { cause: err });
  return new PermanentError(message, { cause: err });
}

/** What the provider asked, when it asked. */
function retryAfter(headers: Headers | undefined): { afterMs?: number } {
  const afterMs = retryAfterMs(headers);
  return afterMs === undefined ? {} : { afterMs };
}

/**
 * The wait a model provider asked for with the 429 behind `err` (a failure of withRetry), if
 * it asked: what an API caller is told to wait too (`Retry-After` on its 503).
 */
export function providerWaitMs(err: unknown): number | undefined {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (e instanceof OpenAI.APIError && e.status === 429) return retryAfterMs(e.headers as Headers | undefined);
  }
  return undefined;
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
