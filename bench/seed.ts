import { randomUUID } from 'node:crypto';
import pgvector from 'pgvector';
import type { MemoryStore } from '../src/store/memory-store.js';
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

/**
 * Fills a namespace with `count` memories of kind `memory` straight through SQL (a bench may;
 * the product writes only through store.apply), and bumps its version once.
 */
export async function seedNamespace(
  store: MemoryStore,
  namespace: string[],
  count: number,
  dimensions: number,
  offset = 0,
): Promise<void> {
  const { t } = store;
  for (let from = 0; from < count; from += 1_000) {
    const n = Math.min(1_000, count - from);
    const keys = Array.from({ length: n }, () => randomUUID());
    const texts = keys.map((_, j) => fact(offset + from + j));
    await store.db.query(
      `with m as (insert into ${t.memories} (namespace, key, kind, value)
                  select $1, k, 'memory', jsonb_build_object('content', c) from unnest($2::text[], $3::text[]) as u(k, c) returning key)
       insert into ${t.vectors} (namespace, key, field, embedding)
       select $1, k, '$', e::vector from unnest($2::text[], $4::text[]) as u(k, e)`,
      [namespace, keys, texts, texts.map((x) => pgvector.toSql(fakeEmbedding(x, dimensions)) as string)],
    );
  }
  await store.db.query(
    `insert into ${t.namespaces} (namespace, version) values ($1, 1) on conflict (namespace) do update set version = ${t.namespaces}.version + 1`,
    [namespace],
  );
}
