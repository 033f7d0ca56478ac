import { z } from 'zod';
import { InputError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import type { MemoryDb } from '../store/memory-db.js';
import { namespaceSchema, type ScoredMemory } from '../store/types.js';

export const searchInputSchema = z.strictObject({
  namespace: namespaceSchema,
  query: z.string().min(1, 'must not be empty').max(8_000),
  limit: z.coerce.number().int().min(1).max(100).default(10),
  offset: z.coerce.number().int().min(0).max(100_000).default(0),
  /** Renew the TTL of the memories returned; omitted: the store-wide default. */
  refreshTtl: z.boolean().optional(),
});
export type SearchInput = z.input<typeof searchInputSchema>;

/** What a producer app reads on its next turn: memories of a namespace ranked by similarity. */
export class Recall {
  constructor(
    private readonly store: MemoryDb,
    private readonly embedder: Embedder,
    /** STORE_REFRESH_TTL_ON_READ: recall is the application reading its memories, the read a
     * TTL refresh is for (a memory that keeps being recalled stays). */
    private readonly refreshTtlOnRead: boolean,
  ) {}

  async search(input: SearchInput): Promise<ScoredMemory[]> {
    const parsed = searchInputSchema.safeParse(input);
    if (!parsed.success)
      throw new InputError(`invalid search request: ${z.prettifyError(parsed.error)}`, parsed.error.issues);
    const { namespace, query, limit, offset, refreshTtl } = parsed.data;
    // Embed first, then borrow a connection: none is held while the model works (invariant 8).
    const [vector] = await this.embedder.embed([query]);
    // Exact within the one namespace: every hit has a score, and the top-k is the true top-k.
    const found = (await this.store.search({
      prefix: namespace,
      only: true,
      vector,
      filter: [],
      limit,
      offset,
    })) as ScoredMemory[];
    return (refreshTtl ?? this.refreshTtlOnRead) ? this.store.refreshTtl(found) : found;
  }
}
