import OpenAI from 'openai';
import { UnavailableError } from '../errors.js';
import { createOpenAI, type EndpointSettings } from './openai.js';

/** A probe answers within this, or the endpoint counts as away. */
const PROBE_TIMEOUT_MS = 5_000;

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
      await client.models.list();
    } catch (err) {
      if (err instanceof OpenAI.APIError && typeof err.status === 'number' && err.status < 500) return;
      throw err;
    }
  };
}

/**
 * A model request that failed after its retries because the endpoint could not be had (no
 * connection, a timeout, a 5xx), not because of what it was sent: 429 and 408 are left out, since
 * a request too large for a rate limit is refused that way every time.
 */
export function modelUnreachable(err: Error, dependency: 'chat-model' | 'embedding-model'): boolean {
  if (!(err instanceof UnavailableError) || err.dependency !== dependency) return false;
  const cause = err.cause;
  if (cause instanceof OpenAI.APIConnectionError) return true;
  return cause instanceof OpenAI.APIError && typeof cause.status === 'number' && cause.status >= 500;
}
