import type { FastifyInstance } from 'fastify';
import { InputError } from '../errors.js';

/**
 * The query string's parser (Fastify's `routerOptions.querystringParser`), strict about its
 * percent-escapes. Fastify's own (fast-querystring) kept an escape it could not decode as the
 * literal text: `key=k%FF` read the key "k%FF", the item `key=k%25FF` names, and `%ED%A0%80` (a
 * lone surrogate) passed as those nine characters. An escape that is malformed (`%ZZ`, a lone
 * `%`) or decodes to no UTF-8 text (`%FF`, a surrogate) is refused, as the path's are
 * (`frameworkErrors` in server.ts). Otherwise it reads as Fastify's did: `+` is a space, a
 * repeated name gives a list, a name without `=` the empty string.
 */

type QueryFields = Record<string, string | string[]>;

/**
 * Queries refused by the parser, and why. The router calls the parser outside the request's
 * error handling (a throw there ended the process), so the parser marks what it returns and
 * `refuseUndecodedQueries` refuses it once the request exists.
 */
const refusals = new WeakMap<QueryFields, string>();

export function parseQueryString(text: string): QueryFields {
  // No prototype: a parameter named `__proto__` is a parameter, as it was.
  const fields = Object.create(null) as QueryFields;
  // Most requests (turns, bodies) have none: no split for them.
  if (text === '') return fields;
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const at = pair.indexOf('=');
    const name = decoded(at < 0 ? pair : pair.slice(0, at));
    const value = at < 0 ? '' : decoded(pair.slice(at + 1));
    if (name === null || value === null) {
      const refused = Object.create(null) as QueryFields;
      refusals.set(refused, refusal(pair));
      return refused;
    }
    const held = fields[name];
    if (held === undefined) fields[name] = value;
    else if (Array.isArray(held)) held.push(value);
    else fields[name] = [held, value];
  }
  return fields;
}

/** A name or value as text, or null when an escape in it does not decode. */
function decoded(raw: string): string | null {
  const text = raw.includes('+') ? raw.replaceAll('+', ' ') : raw;
  if (!text.includes('%')) return text;
  try {
    // Fatal, unlike URLSearchParams: an escape of no UTF-8 throws instead of becoming U+FFFD.
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

function refusal(pair: string): string {
  const shown = JSON.stringify(pair.length > 100 ? `${pair.slice(0, 100)}...` : pair);
  return /%(?![0-9a-f]{2})/i.test(pair)
    ? `the query string is not valid: a % in ${shown} starts no percent-escape (% and two hex digits): send a literal % as %25`
    : `the query string is not valid: a percent-escape in ${shown} decodes to no UTF-8 text: escape a character as its UTF-8 bytes (é as %C3%A9), a literal % as %25`;
}

/**
 * Refuses (400) a request whose query string the parser refused, before authentication and
 * before any route reads or writes: a hook, not each route's schema, so that routes which read
 * the raw query (the memory browser, Bull Board) are covered too. Unmatched URLs are not parsed
 * by this parser and stay a 404.
 */
export function refuseUndecodedQueries(app: FastifyInstance): void {
  app.addHook('onRequest', (request, _reply, done) => {
    const problem = refusals.get(request.query as QueryFields);
    done(problem === undefined ? undefined : new InputError(problem));
  });
}
