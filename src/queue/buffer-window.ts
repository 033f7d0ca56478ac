import type { BufferedEntry, ThreadSnapshot } from './buffer.js';
import type { ThreadContext } from './schemas.js';

/** A stream entry as Redis returns it: its id, and its fields as a flat [name, value, ...] list. */
export type RawEntry = [string, string[]];

/**
 * The start of a thread's buffer, read without knowing the cursor: its context and its first
 * `size` entries, unparsed. A reflection reads it while it reads the cursor from Postgres, and
 * cuts it at the cursor once both are in (`snapshotAt`), which saves the round trip of a read
 * that waits for the cursor.
 */
export interface BufferWindow {
  context: ThreadContext | null;
  entries: RawEntry[];
  /** The window holds the whole stream (fewer entries than asked for). */
  complete: boolean;
}

/** Orders stream entry ids (`<ms>-<seq>`) as Redis does. */
export function compareEntryIds(a: string, b: string): number {
  const [aMs = 0, aSeq = 0] = a.split('-').map(Number);
  const [bMs = 0, bSeq = 0] = b.split('-').map(Number);
  return aMs - bMs || aSeq - bSeq;
}

/**
 * What `ThreadBuffer.read(cursor, max, earlierCount)` would return, taken from a window: the
 * first `max` entries after the cursor and the `earlierCount` entries up to it. Null when the
 * window cannot say: it ends before `max` pending turns and is not the whole stream (a backlog,
 * or reflected turns a failed trim left behind); the caller then reads after the cursor.
 * The window starts at the stream's first entry, so what it holds up to the cursor is exact.
 */
export function snapshotAt(
  window: BufferWindow,
  cursor: string | null,
  max: number,
  earlierCount: number,
  parse: (raw: RawEntry) => BufferedEntry,
): ThreadSnapshot | null {
  const { entries } = window;
  let first = cursor === null ? 0 : entries.findIndex(([id]) => compareEntryIds(id, cursor) > 0);
  if (first === -1) first = entries.length;
  const pending = entries.slice(first, first + max);
  if (pending.length < max && !window.complete) return null;
  const earlier = cursor !== null && earlierCount > 0 ? entries.slice(Math.max(0, first - earlierCount), first) : [];
  return { context: window.context, pending: pending.map(parse), earlier: earlier.map(parse) };
}
