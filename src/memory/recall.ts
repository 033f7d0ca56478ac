import { z } from 'zod';
import { InputError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import type { MemoryStore } from '../store/memory-store.js';
import { namespaceSchema, type ScoredMemory } from '../store/types.js';

export const searchInputSchema = z.strictObject({
  namespace: namespaceSchema,
  query: z.string().min(1, 'must not be empty').max(8_000),
  limit: z.coerce.number().int().min(1).max(100).default(10),
  offset: z.coerce.number().int().min(0).max(100_000).default(0),
});
export type SearchInput = z.input<typeof searchInputSchema>;

/** What a producer app reads on its next turn: memories of a namespace ranked by similarity. */
export class Recall {
  constructor(
    private readonly store: MemoryStore,
    private readonly embedder: Embedder,
  ) {}

  async search(input: SearchInput): Promise<ScoredMemory[]> {
    const parsed = searchInputSchema.safeParse(input);
    if (!parsed.success) throw new InputError(`invalid search request: ${z.prettifyError(parsed.error)}`, parsed.error.issues);
    const { namespace, query, limit, offset } = parsed.data;
    // Embed first, then borrow a connection: none is held while the model works (invariant 8).
    const [vector] = await this.embedder.embed([query]);
    return this.store.search(namespace, vector as number[], limit, offset);
  }
}
