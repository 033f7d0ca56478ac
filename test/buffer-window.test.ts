import { describe, expect, it } from 'vitest';
import { compareEntryIds, snapshotAt, type BufferWindow, type RawEntry } from '../src/queue/buffer-window.js';
import type { BufferedEntry } from '../src/queue/buffer.js';

/** The cut of a window at a cursor, against what a read after the cursor returns. */
const ids = (n: number) => Array.from({ length: n }, (_, i) => `${1000 + i}-0`);
const windowOf = (entryIds: string[], size: number): BufferWindow => ({
  context: { userId: 'u1' },
  entries: entryIds.slice(0, size).map((id): RawEntry => [id, ['t', id]]),
  complete: entryIds.length < size,
});
const parse = ([entryId]: RawEntry) => ({ entryId }) as BufferedEntry;
const cut = (w: BufferWindow, cursor: string | null, max: number, earlier: number) => {
  const s = snapshotAt(w, cursor, max, earlier, parse);
  return s && { pending: s.pending.map((e) => e.entryId), earlier: s.earlier.map((e) => e.entryId) };
};

describe('a buffer window cut at the cursor', () => {
  it('orders entry ids by time, then sequence, as numbers', () => {
    expect(compareEntryIds('999-5', '1000-0')).toBeLessThan(0);
    expect(compareEntryIds('1000-10', '1000-9')).toBeGreaterThan(0);
    expect(compareEntryIds('1000-3', '1000-3')).toBe(0);
  });

  it('gives the pending turns after the cursor and the context turns up to it', () => {
    const all = ids(6); // a trimmed buffer: context turns, then pending ones
    expect(cut(windowOf(all, 14), '1002-0', 10, 2)).toEqual({
      pending: ['1003-0', '1004-0', '1005-0'],
      earlier: ['1001-0', '1002-0'],
    });
    // No cursor yet (or an erase): every turn is pending, none is context.
    expect(cut(windowOf(all, 14), null, 10, 2)).toEqual({ pending: all, earlier: [] });
    // Everything reflected: nothing pending.
    expect(cut(windowOf(all, 14), '1005-0', 10, 4)).toEqual({ pending: [], earlier: all.slice(2) });
    // A cursor whose entry is trimmed away still cuts in the right place.
    expect(cut(windowOf(all, 14), '1002-5', 10, 1)).toEqual({
      pending: ['1003-0', '1004-0', '1005-0'],
      earlier: ['1002-0'],
    });
  });

  it('takes at most max pending turns when a window holds more', () => {
    expect(cut(windowOf(ids(30), 12), '1001-0', 10, 2)).toEqual({
      pending: ids(12).slice(2, 12),
      earlier: ['1000-0', '1001-0'],
    });
  });

  it('cannot say when the window ends before max pending turns and the stream goes on', () => {
    // Reflected turns a failed trim left behind fill the window: the rest must be read after the cursor.
    expect(cut(windowOf(ids(30), 12), '1005-0', 10, 2)).toBeNull();
    expect(cut(windowOf(ids(30), 12), '1020-0', 10, 2)).toBeNull();
    // The same window with the whole stream in it can.
    expect(cut(windowOf(ids(11), 12), '1005-0', 10, 2)).toEqual({
      pending: ids(11).slice(6),
      earlier: ['1004-0', '1005-0'],
    });
  });
});
