import { randomUUID } from 'node:crypto';
import type { MemoryDb } from '../src/store/memory-db.js';
import { fakeEmbedding } from '../test/fake-model/embedding.js';

const WORDS = (
  'ramen pasta sushi tennis chess piano guitar hiking sailing paris lisbon tokyo kyoto berlin python rust postgres ' +
  'kafka redis docker garden roses coffee tea wine cats dogs horses yoga running cycling swimming novels poetry jazz opera ' +
  'cinema painting pottery knitting baking curry tacos dumplings skiing surfing climbing camping astronomy birds history'
).split(' ');

/** A plausible, varied memory sentence (so that fake embeddings spread out like real ones). */
export function fact(i: number): string {
  const w = (k: number) => WORDS[(i * 7919 + k * 104729) % WORDS.length];
  return `User likes ${w(1)} and ${w(2)}, mentioned ${w(3)} (note ${i})`;
}

/** Fills a namespace with `count` memories of kind `memory`, 1,000 per change set. */
export async function seedNamespace(
  store: MemoryDb,
  namespace: string[],
  count: number,
  dimensions: number,
  offset = 0,
): Promise<void> {
  for (let from = 0; from < count; from += 1_000) {
    const n = Math.min(1_000, count - from);
    const writes = Array.from({ length: n }, (_, j) => {
      const content = fact(offset + from + j);
      return {
        op: 'put' as const,
        namespace,
        key: randomUUID(),
        kind: 'memory',
        value: { content },
        fields: [{ field: '$', text: content, vector: fakeEmbedding(content, dimensions) }],
        ttl: null,
      };
    });
    const applied = await store.apply({ actor: 'bench:seed', writes });
    if (applied.status !== 'applied') throw new Error(`seeding ${JSON.stringify(namespace)}: ${applied.status}`);
  }
}
