import { ModelOutputError } from '../errors.js';
import type { BufferedTurn } from '../queue/schemas.js';

/**
 * How much of a thread one reflection shows the model, and how it shows less when the model
 * refuses the prompt as longer than its context. A refusal is no reason to fail: the job's retries
 * would send the same prompt, and every later turn's job would read the same turns, so the thread
 * would stay parked for good behind turns no prompt can hold (invariant 2).
 */
export interface PromptScope {
  /** New turns per reflection: the rest stay pending, a backlog for a follow-up. */
  maxTurns: number;
  /** Already-reflected turns shown as context. */
  contextTurns: number;
  /** Characters of a turn's text shown; Infinity until one turn alone was too long. */
  turnChars: number;
}

/** What a narrower scope leaves out, in the order it is tried. */
export type Narrowing = 'fewer-turns' | 'no-earlier' | 'cut-turn';

/**
 * Narrowings per reflection before it fails as it did without them. Halving 200 turns (the batch)
 * down to one takes 8, dropping the earlier turns 1, and cutting one 32,000-character message (the
 * hot path's limit) to 2,000 characters 4 more; each is one refused request, which providers
 * answer at once and do not bill.
 */
export const MAX_NARROWINGS = 16;

/** A turn is not cut below this: a prompt still too long then is too long for other reasons. */
const MIN_TURN_CHARS = 500;

/** The model refused the prompt for its length (retry.ts reads the provider's error code). */
export function refusedAsTooLong(err: unknown): err is ModelOutputError {
  return err instanceof ModelOutputError && err.reason === 'too-long';
}

/**
 * The next scope after a prompt showing `turns` and `earlier` was refused: half the new turns
 * while there are several (the cursor then commits only through the last one shown), else
 * without earlier turns, else the one turn's text cut in half. Null when nothing is left to take
 * away.
 */
export function narrower(
  scope: PromptScope,
  shown: { turns: BufferedTurn[]; earlier: BufferedTurn[] },
): { scope: PromptScope; how: Narrowing } | null {
  if (shown.turns.length > 1)
    return { how: 'fewer-turns', scope: { ...scope, maxTurns: Math.floor(shown.turns.length / 2) } };
  if (shown.earlier.length > 0) return { how: 'no-earlier', scope: { ...scope, contextTurns: 0 } };
  const longest = Math.min(scope.turnChars, Math.max(0, ...shown.turns.map((t) => t.content.length)));
  if (longest <= MIN_TURN_CHARS) return null;
  return { how: 'cut-turn', scope: { ...scope, turnChars: Math.max(MIN_TURN_CHARS, Math.floor(longest / 2)) } };
}

/**
 * Turns as the prompt shows them: a text longer than `chars` is cut there and says so, so that
 * the model does not take the cut for the end of what was said. Only the prompt is cut: the
 * buffer keeps the turn whole.
 */
export function cutTurns(turns: BufferedTurn[], chars: number): BufferedTurn[] {
  return turns.map((turn) => {
    if (turn.content.length <= chars) return turn;
    // Not between the two halves of a surrogate pair.
    const end = isHighSurrogate(turn.content.charCodeAt(chars - 1)) ? chars - 1 : chars;
    const hidden = turn.content.length - end;
    return { ...turn, content: `${turn.content.slice(0, end)} ${cutMarker(hidden, turn.content.length)}` };
  });
}

/** What ends a cut turn in the prompt. */
export const cutMarker = (hidden: number, total: number) =>
  `[cut for length: the last ${hidden} of ${total} characters are not shown]`;

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
