import type { FastifyRequest } from 'fastify';
import { InputError } from '../errors.js';

/** Fatal: bytes that are no UTF-8 are refused, never replaced with U+FFFD. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A request header's text, its bytes read as UTF-8; undefined when absent. Node hands header
 * values over as Latin-1 (a byte a character), so `{"userId":"josé"}` sent as UTF-8, as curl and
 * shells send it, arrived as "josÃ©" and filed memories under that name. Bytes that are no UTF-8
 * (a client that sent é as the Latin-1 byte 0xE9, as fetch does) are refused rather than guessed
 * at: the two encodings cannot always be told apart, and a user id must not change on the way.
 */
export function headerText(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  if (value === undefined) return undefined;
  if (Array.isArray(value)) throw new InputError(`send the ${name} header once`);
  try {
    return utf8.decode(Buffer.from(value, 'latin1'));
  } catch {
    throw new InputError(
      `the ${name} header is not UTF-8: send it as UTF-8, or escape characters beyond ASCII in its JSON (\\u00e9 for é)`,
    );
  }
}
