import type { z } from 'zod';
import { retryAfterMs } from '../core/retry-after.js';
import { PermanentError, UnavailableError } from '../errors.js';
import { httpError, NO_ROUTE, parseJson } from './errors.js';
import { callOptionsSchema, type CallOptions, type HttpClientSettings } from './options.js';
import { checked } from '../core/invalid-input.js';

/** Where a call goes and what it sends. */
export interface Request {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  query?: URLSearchParams;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as it is, as `application/x-ndjson` (an import file), instead of `body`. */
  ndjson?: string;
  /**
   * Safe to send again after a failure that may have left it applied (a 503, a lost connection):
   * only calls whose repeat changes nothing (reads; turns that all carry message ids).
   */
  idempotent: boolean;
}

/** One API call with a JSON answer: the request, and how to read the answer. */
export interface Exchange<S extends z.ZodType> extends Request {
  /** The answer's schema: decoding it turns ISO times back into Dates. */
  answer: S;
  /** A 404 is an answer of `null` (a missing item; `answer` takes null), not an error. */
  nullOn404?: boolean;
}

/** What one attempt came to: the call's result, or the failure to retry or throw. */
type Outcome<T> = { value: T } | { failure: Error };

/** The call's deadline and the signal every attempt (and a streamed answer's reads) obey. */
interface Limits {
  what: string;
  timeoutMs: number;
  deadline: AbortSignal;
  /** When the deadline passes (ms since the epoch). */
  endsAt: number;
  signal: AbortSignal;
}

/**
 * `fetch` with what every call needs: the API key, one deadline for the whole call (retries
 * included), the server's refusals as the SDK's error classes, and for idempotent calls,
 * retries of the failures worth retrying (UnavailableError: 429, 502, 503, 504, no connection).
 */
export class Transport {
  private readonly base: string;

  constructor(private readonly o: HttpClientSettings) {
    this.base = o.url.replace(/\/+$/, '');
  }

  async send<S extends z.ZodType>(x: Exchange<S>, call: CallOptions = {}): Promise<z.output<S>> {
    return this.attempts<z.output<S>>(x, call, this.limits(x, call), async (res, what) => {
      const text = await res.text();
      if (res.ok) return { value: this.read(x, text, what) };
      if (res.status === 404 && x.nullOn404 && !NO_ROUTE.test(errorText(text)))
        return { value: this.read(x, 'null', what) };
      return { failure: httpError(res.status, text, what, this.base) };
    });
  }

  /**
   * An NDJSON answer's lines as they arrive (without their newlines), the first checked by
   * `header`: an answer whose first line is not one is not engram's (a `PermanentError`). The
   * call's deadline bounds the whole answer, read to its end; a refusal before the answer starts
   * is retried as `send` retries it, an answer cut off after it started is an UnavailableError.
   * Stopping early (`break`) cancels the rest of the answer.
   */
  async *lines(x: Request & { header: z.ZodType }, call: CallOptions = {}): AsyncGenerator<string> {
    const limits = this.limits(x, call);
    const res = await this.attempts<ReadableStream<Uint8Array>>(x, call, limits, async (answer, what) =>
      answer.ok && answer.body
        ? { value: answer.body }
        : { failure: httpError(answer.status, await answer.text(), what, this.base) },
    );
    const reader = res.pipeThrough(new TextDecoderStream()).getReader();
    let rest = '';
    let n = 0;
    const line = (text: string): string => {
      if (n++ === 0 && !x.header.safeParse(parseJson(text)).success)
        throw new PermanentError(`${limits.what} answered with a body this client cannot read: ${text.slice(0, 200)}`);
      return text;
    };
    try {
      for (;;) {
        const chunk = await reader.read().catch((err: unknown) => {
          if (call.signal?.aborted) throw call.signal.reason;
          if (limits.deadline.aborted) throw timedOut(limits.what, limits.timeoutMs, true, err);
          throw new UnavailableError('service', `the answer to ${limits.what} was cut off after ${n} lines`, {
            cause: err,
          });
        });
        if (chunk.done) break;
        rest += chunk.value;
        for (let i = rest.indexOf('\n'); i >= 0; i = rest.indexOf('\n')) {
          const text = rest.slice(0, i);
          rest = rest.slice(i + 1);
          yield line(text);
        }
      }
      if (rest) yield line(rest);
      if (n === 0) throw new PermanentError(`${limits.what} answered with an empty body`);
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }

  private limits(x: Request, given: CallOptions): Limits {
    const call = checked(callOptionsSchema, given, 'call options');
    const timeoutMs = call.timeoutMs ?? this.o.timeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = call.signal ? AbortSignal.any([deadline, call.signal]) : deadline;
    return { what: `${x.method} ${x.path}`, timeoutMs, deadline, endsAt: Date.now() + timeoutMs, signal };
  }

  /**
   * Sends the request until `outcome` gives a value, retrying an idempotent call's
   * UnavailableErrors (429, 502, 503, 504, no connection) within its attempts and its deadline.
   */
  private async attempts<T>(
    x: Request,
    call: CallOptions,
    { what, timeoutMs, deadline, endsAt, signal }: Limits,
    outcome: (res: Response, what: string) => Promise<Outcome<T>>,
  ): Promise<T> {
    const url = `${this.base}${x.path}${x.query?.size ? `?${x.query.toString()}` : ''}`;
    const headers: Record<string, string> = {};
    if (this.o.apiKey) headers.authorization = `Bearer ${this.o.apiKey}`;
    let body: string | undefined;
    if (x.ndjson !== undefined) {
      headers['content-type'] = 'application/x-ndjson';
      body = x.ndjson;
    } else if (x.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(x.body);
    }
    for (let attempt = 1; ; attempt++) {
      let failure: Error;
      // A 503's Retry-After (the service passes on a model provider's rate limit), or a gateway's
      // 429's: waited for.
      let asked: number | undefined;
      try {
        const res = await fetch(url, { method: x.method, headers, body, signal });
        const result = await outcome(res, what);
        if ('value' in result) return result.value;
        failure = result.failure;
        asked = retryAfterMs(res.headers);
      } catch (err) {
        if (call.signal?.aborted) throw call.signal.reason;
        if (deadline.aborted) throw timedOut(what, timeoutMs, x.idempotent, err);
        if (err instanceof PermanentError) throw err;
        failure = new UnavailableError('service', `could not reach the engram API at ${this.base} (${what})`, {
          cause: err,
        });
      }
      if (!x.idempotent || !(failure instanceof UnavailableError) || attempt >= this.o.retry.attempts) throw failure;
      // A wait past the deadline would end in a timeout that hides what the server said.
      if (asked !== undefined && Date.now() + asked >= endsAt) throw failure;
      await this.pause(attempt, signal, asked).catch((err: unknown) => {
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

  /**
   * Full jitter: a random wait up to base x 2^(attempt-1), capped, or what the server asked if
   * longer; cut short by the deadline.
   */
  private pause(attempt: number, signal: AbortSignal, askedMs = 0): Promise<void> {
    const { baseDelayMs, maxDelayMs } = this.o.retry;
    const ms = Math.max(askedMs, Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1)));
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
