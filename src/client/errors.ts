import { errorSchema } from '../api/schemas.js';
import { AuthError, ConflictError, InputError, LimitError, PermanentError, UnavailableError } from '../errors.js';

/** The router's answer to a path it does not serve (src/api/method-not-allowed.ts), unlike a route's own 404. */
export const NO_ROUTE = /^no route /;

/**
 * An answer's status as the SDK's error classes, with the server's message and `details`; the
 * HTTP exchange is the `cause`. 502 and 504 are a gateway's: engram is out of its reach; so is
 * a 429, a gateway's rate limit.
 * `base` is the client's `url`, named when a 404 says the request went somewhere else.
 */
export function httpError(status: number, text: string, what: string, base: string): Error {
  const body = errorSchema.safeParse(parseJson(text));
  let message = body.success ? body.data.error : `${what} answered ${status}: ${text.slice(0, 200)}`;
  // No route there (engram's router, or not engram at all): the likeliest cause is the client's
  // `url`, such as one ending in /v1 that makes every path /v1/v1/...; say so, not just "no route".
  if (status === 404 && !(body.success && !NO_ROUTE.test(body.data.error)))
    message += `; is ${base} the engram API's base URL? \`url\` is its root, such as http://127.0.0.1:3000, without /v1`;
  const details = body.success ? body.data.details : undefined;
  const cause = new Error(`HTTP ${status} from ${what}`);
  switch (status) {
    case 400:
      return new InputError(message, details, { cause });
    case 413:
      return new LimitError(message, details, { cause });
    case 401:
    case 403:
      return new AuthError(message, status === 403, { cause });
    case 409:
      return new ConflictError(message, details, { cause });
    // 429: engram sends none; a gateway or proxy in front of it limiting the rate does, and is
    // worth asking again after its Retry-After, as a 503 is.
    case 429:
    case 502:
    case 503:
    case 504:
      return new UnavailableError('service', message, { cause });
    default:
      return new PermanentError(message, { cause });
  }
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
