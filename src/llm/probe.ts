import OpenAI from 'openai';
import { UnavailableError } from '../errors.js';
import { createOpenAI, type EndpointSettings } from './openai.js';

/**
 * A probe answers within this, or the endpoint counts as away. Its signal bounds the answer's
 * body too: the client's `timeout` stops at the headers, and a body that trickles in would hold
 * the probe, and what waits on it, for good.
 */
const PROBE_TIMEOUT_MS = 5_000;

type Dependency = 'chat-model' | 'embedding-model';

/**
 * Whether a model endpoint is there: `GET /models`, which OpenAI-compatible servers answer
 * without spending tokens. Any answer below 500 counts (a server without the route says 404, one
 * that wants another key 401: both are up); no connection, a timeout or a 5xx (a proxy in front
 * of a model server that is restarting) does not. Rejects when away.
 */
export function modelProbe(settings: EndpointSettings): () => Promise<void> {
  const client = createOpenAI({ ...settings, timeoutMs: PROBE_TIMEOUT_MS });
  return async () => {
    try {
      await client.models.list({ signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    } catch (err) {
      if (err instanceof OpenAI.APIError && typeof err.status === 'number' && err.status < 500) return;
      throw err;
    }
  };
}

/**
 * Whether a model endpoint takes a request now, asked with the smallest request of its kind (a
 * one-token completion of one word, the embedding of one word): `GET /models` is not rate
 * limited, so only a real request tells a limit on everyone from a request too large for it.
 * Only a 429 is a refusal. Any other answer counts as taken, a 400 too (a model that refuses
 * `max_completion_tokens: 1` still took the request); so do no answer, a timeout and a 5xx,
 * which are not a rate limit: a slow model must not start a hold for a 429 that was one
 * request's (an endpoint out of reach is the outage probe's to find). Rejects when refused.
 */
export function rateLimitProbe(
  settings: EndpointSettings,
  request: (client: OpenAI, options: { signal: AbortSignal }) => Promise<unknown>,
): () => Promise<void> {
  const client = createOpenAI({ ...settings, timeoutMs: PROBE_TIMEOUT_MS });
  return async () => {
    try {
      await request(client, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    } catch (err) {
      if (err instanceof OpenAI.APIError && err.status === 429) throw err;
    }
  };
}

/**
 * A model request that failed after its retries because the endpoint could not be had (no
 * connection, a timeout, a 5xx), not because of what it was sent: 429 and 408 are left out, since
 * a request too large for a rate limit is refused that way every time.
 */
export function modelUnreachable(err: Error, dependency: Dependency): boolean {
  if (!(err instanceof UnavailableError) || err.dependency !== dependency) return false;
  const cause = err.cause;
  if (cause instanceof OpenAI.APIConnectionError) return true;
  return cause instanceof OpenAI.APIError && typeof cause.status === 'number' && cause.status >= 500;
}

/**
 * A model request still refused with a 429 after its retries (or asked to wait past their cap):
 * the provider's rate limit or quota. Whether it limits everyone or only this request (one too
 * large for a tokens-per-minute limit) is the rate-limit probe's to tell.
 */
export function modelRateLimited(err: Error, dependency: Dependency): boolean {
  if (!(err instanceof UnavailableError) || err.dependency !== dependency) return false;
  return err.cause instanceof OpenAI.APIError && err.cause.status === 429;
}
