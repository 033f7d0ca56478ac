/**
 * `url` with whatever sits before its host's `@` (a user and password) replaced by `***`, for a
 * message or a log line. A value refused as a URL is still shown (which scheme it had is the
 * operator's clue), so this reads it as text: up to the last `@`, since a password may hold an
 * unencoded `/` or `@`. An `@` later in the URL hides its host too, never a secret.
 */
export function withoutCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^]*@/i, (_match, scheme: string | undefined) => `${scheme ?? ''}***@`);
}
