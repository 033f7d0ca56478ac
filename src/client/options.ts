import { z } from 'zod';
import { intRange } from '../core/int-range.js';

/** What `new EngramHttpClient(options)` takes; checked when the client is made. */
export const httpClientOptionsSchema = z.strictObject({
  /** The API's base URL, such as `http://127.0.0.1:3000`. */
  url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL of the engram API' }),
  /** Sent as `Authorization: Bearer <key>` when the API has API_KEYS. */
  apiKey: z.string().min(1).optional(),
  /**
   * How long a call may take in all, retries included (ms); a call may set its own. Above the
   * server's QUERY_EMBEDDING_TIMEOUT_MS (2 s), so that a recall hears its degraded answer.
   */
  timeoutMs: intRange(1, 3_600_000).default(10_000),
  /**
   * Attempts of a call that is safe to repeat (see docs/http-client.md), with jittered
   * exponential backoff between them: a random wait up to `baseDelayMs` x 2^n, at most `maxDelayMs`.
   */
  retry: z
    .strictObject({
      attempts: intRange(1, 10).default(3),
      baseDelayMs: intRange(0, 60_000).default(100),
      maxDelayMs: intRange(0, 60_000).default(2_000),
    })
    .prefault({}),
});
export type EngramHttpClientOptions = z.input<typeof httpClientOptionsSchema>;
export type HttpClientSettings = z.output<typeof httpClientOptionsSchema>;

/** Per call: its own time limit, and a signal that cancels it. */
export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * A call's own options, checked as the client's are: a `timeoutMs` past Node's timer range
 * (about 24.8 days) fired at once and was reported as a server too slow, and a negative or NaN
 * one threw a RangeError outside the client's error classes.
 */
export const callOptionsSchema = z.strictObject({
  timeoutMs: httpClientOptionsSchema.shape.timeoutMs.unwrap().optional(),
  signal: z.instanceof(AbortSignal).optional(),
});
