/**
 * Deterministic stand-in for an embedding model: a hashed bag of words, L2-normalised.
 * Texts sharing words are close, so "I love ramen" finds "User loves ramen".
 */
export function fakeEmbedding(text: string, dimensions: number): number[] {
  const v = new Array<number>(dimensions).fill(0);
  const words = text.toLowerCase().match(/[a-z0-9]+/g) ?? [];
  for (const raw of words) {
    if (STOP.has(raw)) continue;
    const word = raw.length > 3 && raw.endsWith('s') ? raw.slice(0, -1) : raw;
    const h = fnv1a(word);
    v[h % dimensions] = (v[h % dimensions] as number) + ((h >>> 16) & 1 ? 1 : -1);
  }
  const norm = Math.hypot(...v);
  if (norm === 0) {
    v[0] = 1;
    return v;
  }
  return v.map((x) => x / norm);
}

const STOP = new Set([
  'i',
  'a',
  'an',
  'the',
  'and',
  'also',
  'to',
  'of',
  'is',
  'am',
  'are',
  'user',
  'my',
  'me',
  'it',
  'now',
  'do',
  'don',
  't',
  'no',
  'any',
  'more',
  'longer',
]);

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
