import { PermanentError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import type { Db } from '../store/db.js';
import { storeDimensions } from '../store/migrate.js';

/**
 * The client's embedder, checked once against the store it searches: an SDK is configured apart
 * from the service, and embeddings of another size than the store's found nothing in an empty
 * namespace (no row to compare, so no error) while failing in a full one. The first embedding
 * reads the size the store was made for; a mismatch rejects every call naming the option, and a
 * failed read (Postgres away) is tried again by the next call.
 */
export function storeSizedEmbedder(embedder: Embedder, db: Db, schema: string): Embedder {
  let checked: Promise<void> | null = null;
  const check = () =>
    (checked ??= storeDimensions(db, schema).then(
      (stored) => {
        if (stored !== undefined && stored !== embedder.dimensions)
          throw new PermanentError(
            `the client's embeddings have ${embedder.dimensions} dimensions but the store in schema "${schema}" was made for ${stored}: ` +
              "give `embedding.dimensions` (and `model`) the service's EMBEDDING_DIMENSIONS (and EMBEDDING_MODEL)",
          );
      },
      (err: unknown) => {
        checked = null;
        throw err;
      },
    ));
  return {
    dimensions: embedder.dimensions,
    async embed(texts, signal, onUsage) {
      await check();
      return embedder.embed(texts, signal, onUsage);
    },
  };
}
