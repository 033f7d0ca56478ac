import type { z } from 'zod';
import { PermanentError, UnavailableError } from '../errors.js';
import { httpError, parseJson } from './errors.js';
import type { CallOptions, HttpClientSettings } from './options.js';

/** One API call: where, what to send, how to read the answer, and whether to repeat it. */
export interface Exchange<S extends z.ZodType> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  query?: URLSearchParams;
  body?: unknown;
  /** The answer's schema: decoding it turns ISO times back into Dates. */
  answer: S;
  /**
   * Safe to send again after a failure that may have left it applied (a 503, a lost connection):
   * only calls whose repeat changes nothing (reads; turns that all carry message ids).
   */
  idempotent: boolean;
  /** A 404 is an answer of `null` (a missing item; `answer` takes null), not an error. */
  nullOn404?: boolean;
}

/** The router's answer to a path it does not serve (server.ts), unlike a route's own 404. */
const NO_ROUTE = /^no route /;

/**
 * `fetch` with what every call needs: the API key, one deadline for the whole call (retries
 * included), the server's refusals as the SDK's error classes, and for idempotent calls,
 * retries of the failures worth retrying (UnavailableError: 502, 503, 504, no connection).
 */
export class Transport {
  private readonly base: string;

  constructor(private readonly o: HttpClientSettings) {
    this.base = o.url.replace(/\/+$/, '');
  }

  async send<S extends z.ZodType>(x: Exchange<S>, call: CallOptions = {}): Promise<z.output<S>> {
    const what = `${x.method} ${x.path}`;
    const timeoutMs = call.timeoutMs ?? this.o.timeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = call.signal ? AbortSignal.any([deadline, call.signal]) : deadline;
    const url = `${this.base}${x.path}${x.query?.size ? `?${x.query.toString()}` : ''}`;
    const headers: Record<string, string> = {};
    if (this.o.apiKey) headers.authorization = `Bearer ${this.o.apiKey}`;
    if (x.body !== undefined) headers['content-type'] = 'application/json';
    const body = x.body === undefined ? undefined : JSON.stringify(x.body);
    for (let attempt = 1; ; attempt++) {
      let failure: Error;
      try {
        const res = await fetch(url, { method: x.method, headers, body, signal });
        const text = await res.text();
        if (res.ok) return this.read(x, text, what);
        if (res.status === 404 && x.nullOn404 && !NO_ROUTE.test(errorText(text))) return this.read(x, 'null', what);
        failure = httpError(res.status, text, what);
      } catch (err) {
        if (call.signal?.aborted) throw call.signal.reason;
        if (deadline.aborted) throw timedOut(what, timeoutMs, x.idempotent, err);
        if (err instanceof PermanentError) throw err;
        failure = new UnavailableError('service', `could not reach the engram API at ${this.base} (${what})`, {
          cause: err,
        });
      }
      if (!x.idempotent || !(failure instanceof UnavailableError) || attempt >= this.o.retry.attempts) throw failure;
      await this.pause(attempt, signal).catch((err: unknown) => {
        if (call.signal?.aborted) throw call.signal.reason;
        throw timedOut(what, timeoutMs, x.idempotent, err);
      });
    }
  }

  private read<S extends z.ZodType>(x: Exchange<S>, text: string, what: string): z.output<S> {
    const parsed = x.answer.safeParse(parseJson(text));
    if (parsed.success) return parsed.data;
    // Another version of the API, or not engram at that URL: nothing a retry would change.
    throw new PermanentError(`${what} answered with a body this client cannot read: ${text.slice(0, 200)}`, {
      cause: parsed.error,
    });
  }

  /** Full jitter: a random wait up to base x 2^(attempt-1), capped; cut short by the deadline. */
  private pause(attempt: number, signal: AbortSignal): Promise<void> {
    const { baseDelayMs, maxDelayMs } = this.o.retry;
    const ms = Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason as Error);
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function errorText(text: string): string {
  const body = parseJson(text) as { error?: unknown } | undefined;
  return typeof body?.error === 'string' ? body.error : '';
}

function timedOut(what: string, ms: number, idempotent: boolean, cause: unknown): UnavailableError {
  const hint = idempotent ? 'try again later' : 'it may have been applied all the same';
  return new UnavailableError('service', `the engram API did not answer ${what} within ${ms} ms; ${hint}`, { cause });
}
