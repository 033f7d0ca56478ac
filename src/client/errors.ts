import { errorSchema } from '../api/schemas.js';
import { AuthError, ConflictError, InputError, LimitError, PermanentError, UnavailableError } from '../errors.js';

/**
 * An answer's status as the SDK's error classes, with the server's message and `details`; the
 * HTTP exchange is the `cause`. 502 and 504 are a gateway's: engram is out of its reach.
 */
export function httpError(status: number, text: string, what: string): Error {
  const body = errorSchema.safeParse(parseJson(text));
  const message = body.success ? body.data.error : `${what} answered ${status}: ${text.slice(0, 200)}`;
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
