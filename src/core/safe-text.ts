import type { z } from 'zod';

/**
 * Text engram can hand to Postgres as it is. Postgres text and jsonb cannot hold NUL (U+0000),
 * and a lone UTF-16 surrogate (half of a pair, such as "\ud800") is no Unicode text at all:
 * node-postgres encodes it as U+FFFD, so two distinct keys collide ("\ud800-x" reads the item
 * stored under "\ufffd-x"), and jsonb refuses its `\ud800` escape with an error. Either is the
 * caller's to fix, and is refused before any work is done.
 */

// Node 20 has isWellFormed and toWellFormed (ES2024); the project's lib is ES2023.
type Es2024String = { isWellFormed(): boolean; toWellFormed(): string };
const wellFormed = (s: string) => (s as unknown as Es2024String).isWellFormed();

/** Why `s` cannot be stored as it is, or null. */
export function textProblem(s: string): string | null {
  if (s.includes('\u0000')) return 'must not contain NUL characters (\\u0000): Postgres cannot store them';
  if (!wellFormed(s))
    return 'must not contain a lone UTF-16 surrogate (\\ud800-\\udfff without its pair): it is no Unicode text';
  return null;
}

/** The check every string schema whose text reaches Postgres runs (`z.string().check(storableText)`). */
export const storableText: z.core.CheckFn<string> = (ctx) => {
  const problem = textProblem(ctx.value);
  if (problem) ctx.issues.push({ code: 'custom', input: ctx.value, message: problem });
};

/**
 * `s` made storable: NUL becomes a space, a lone surrogate U+FFFD. Only for text engram derives
 * for a search (a query from chat turns, which are buffered exactly as sent), never for a
 * caller's own field, which is refused instead.
 */
export function storableCopy(s: string): string {
  return (s.replaceAll('\u0000', ' ') as unknown as Es2024String).toWellFormed();
}

/** At most `max` UTF-16 units, never half of a surrogate pair (which Postgres would refuse). */
export function clipText(s: string, max: number): string {
  if (s.length <= max) return s;
  const code = s.charCodeAt(max - 1);
  return s.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
}
