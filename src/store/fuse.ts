import type { SearchItem } from './types.js';

/**
 * Reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009): an item scores the sum of
 * 1 / (k + rank) over the rankings that hold it, so agreement between rankings counts and no
 * ranking's raw scores (cosine, BM25) need to be comparable. k = 60, the paper's constant.
 */
const K = 60;

/**
 * Fuses rankings into one, best first; the fused score replaces each item's. With `recency`,
 * a score is scaled by (1 - weight) + weight x 0.5^(age / halfLife), age from `updatedAt`.
 */
export function fuse(rankings: SearchItem[][], recency?: { halfLifeMs: number; weight: number }): SearchItem[] {
  const fused = new Map<string, { item: SearchItem; score: number }>();
  for (const ranking of rankings) {
    ranking.forEach((item, rank) => {
      const id = JSON.stringify([item.namespace, item.key]);
      const entry = fused.get(id) ?? { item, score: 0 };
      entry.score += 1 / (K + rank + 1);
      fused.set(id, entry);
    });
  }
  const now = Date.now();
  const scored = [...fused.values()].map(({ item, score }) => {
    const age = Math.max(0, now - item.updatedAt.getTime());
    const decay = recency ? 1 - recency.weight + recency.weight * 0.5 ** (age / recency.halfLifeMs) : 1;
    // The item itself gets its score (not a copy): it stays the object the TTL refresh knows.
    return Object.assign(item, { score: score * decay });
  });
  return scored.sort((a, b) => b.score - a.score || compare(a, b));
}

function compare(a: SearchItem, b: SearchItem): number {
  const x = JSON.stringify(a.namespace);
  const y = JSON.stringify(b.namespace);
  return x < y ? -1 : x > y ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}
