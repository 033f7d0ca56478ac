import { z } from 'zod';
import { invalidInput } from '../core/invalid-input.js';
import { InputError, UnavailableError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import { embedWithin, type QueryDeadline } from '../llm/query-deadline.js';
import type { Logger } from '../observability/logger.js';
import { ThrottledWarnings } from '../observability/throttled-warning.js';
import { AnswerBudget, DEFAULT_ANSWER_MAX_BYTES, PAGE_ADVICE } from '../store/answer-budget.js';
import { embedTexts } from '../store/embed-texts.js';
import type { MemoryDb, ReadOptions } from '../store/memory-db.js';
import type { SearchMode } from '../store/search.js';
import type { KindsAt } from '../store/search-conditions.js';
import type { MemoryItem, Namespace, ScoredMemory, SearchItem } from '../store/types.js';
import type { KindRoute } from '../core/kind-route.js';
import { defaultKinds, profileKey } from './kinds.js';
import { fillNamespace, templateVariables } from '../core/namespace-template.js';
import { storableCopy } from '../core/safe-text.js';
import { documentText, fitBudget } from './recall-prompt.js';
import {
  recallInputSchema,
  searchInputSchema,
  type RecallInput,
  type RecallParsed,
  type RecalledMemory,
  type RecallResult,
  type SearchInput,
} from './recall-schemas.js';
import { searchQueries } from './reflection-plan.js';

export { recallInputSchema, searchInputSchema, type RecallInput, type SearchInput } from './recall-schemas.js';
export type { RecalledMemory, RecalledProfile, RecallResult } from './recall-schemas.js';

/**
 * Reorders recall's candidates (a cross-encoder, an LLM judge): given the query and the fused
 * candidates, best first, it returns them in its order (it may drop some). Off unless given.
 * Only candidates come back: an item it returns that was not one is left out, so a reranker
 * cannot put a memory from outside the caller's namespaces (or tenant) into an answer.
 */
export type Reranker = (query: string, candidates: SearchItem[]) => Promise<SearchItem[]>;

/**
 * Each namespace with the kinds that keep their memories there: a memory of another kind stored
 * in a kind's namespace is not that kind's, and is recalled with its own kind or not at all.
 */
function kindsAt(kinds: RecallKind[], namespaceOf: (k: RecallKind) => Namespace): KindsAt {
  const at = new Map<string, { namespace: Namespace; kinds: string[] }>();
  for (const k of kinds) {
    const namespace = namespaceOf(k);
    const id = JSON.stringify(namespace);
    at.set(id, { namespace, kinds: [...(at.get(id)?.kinds ?? []), k.name] });
  }
  return [...at.values()];
}

/** What recall needs of a kind: where its memories are, and whether it is a profile. */
export type RecallKind = Pick<KindRoute, 'name' | 'namespace' | 'mode'>;

/**
 * Candidates recall ranks before it cuts to `limit` and the token budget: at least this many,
 * so that deduplication has some to spare, and never fewer than the `limit` asked (up to 100).
 */
const CANDIDATES = 50;

/** How the reads keep to a chat's hot path: the query's embedding deadline, and where a degraded recall is said. */
export interface RecallReads {
  /** Unset: the embedder's own timeout and retries, however long they take. */
  queryDeadline?: QueryDeadline;
  log?: Logger;
}

/**
 * How one recall is called: `signal`, the caller went away; `memoryId`, an id to put on each
 * memory's line of the prompt block (MCP's recall: the model names a memory back by it).
 */
export type RecallCall = Pick<ReadOptions, 'signal'> & { memoryId?: (m: RecalledMemory) => string };

/** A degraded recall is said once per window: during an outage every recall degrades alike. */
const DEGRADED_WARN_EVERY_S = 10;

/** What a producer app reads on its next turn: one namespace's memories, or a recall across its kinds. */
export class Recall {
  constructor(
    private readonly store: MemoryDb,
    private readonly embedder: Embedder,
    /** STORE_REFRESH_TTL_ON_READ: recall is the application reading its memories, the read a
     * TTL refresh is for (a memory that keeps being recalled stays). */
    private readonly refreshTtlOnRead: boolean,
    /** The deployment's kinds (a producer learns them from the service's published settings). */
    private readonly kinds: () => readonly RecallKind[] = () => defaultKinds,
    private readonly rerank?: Reranker,
    /**
     * STORE_ANSWER_MAX_BYTES: the stored JSON a search may return (answer-budget.ts). A recall's
     * candidates (at most 50 per ranking) keep the best that fit in it instead of refusing: the
     * answer is a ranked list, and a chat's next prompt is better with fewer memories than none.
     */
    private readonly answerMaxBytes: number = DEFAULT_ANSWER_MAX_BYTES,
    private readonly reads: RecallReads = {},
  ) {}

  private readonly degradedWarnings = new ThrottledWarnings(DEGRADED_WARN_EVERY_S * 1000);

  /**
   * One namespace's memories, most similar to `query` first. `signal`: the caller went away,
   * the query's embedding and the read stop.
   */
  async search(input: SearchInput, call: Pick<ReadOptions, 'signal'> = {}): Promise<ScoredMemory[]> {
    const { namespace, query, limit, offset, mode, asOf, refreshTtl, consistency } = parse(
      searchInputSchema,
      input,
      'search',
    );
    const budget = new AnswerBudget(this.answerMaxBytes, PAGE_ADVICE);
    const { found } = await this.rank(
      { namespaces: [namespace], query, mode: mode ?? 'vector', limit, offset, asOf },
      { consistency: consistency ?? 'replica', budget, signal: call.signal },
    );
    return this.refreshed(found as ScoredMemory[], refreshTtl);
  }

  /**
   * The profiles and the most relevant memories of every kind's namespace filled from the
   * context (as a reflection fills them), ranked together (hybrid by default), deduplicated,
   * cut to `limit` and the token budget, and as a prompt block.
   */
  recall(input: RecallInput, call: RecallCall = {}): Promise<RecallResult> {
    return this.recallParsed(parse(recallInputSchema, input, 'recall'), call);
  }

  /** For callers that validated with the same schema already (the HTTP route, with tenancy). */
  async recallParsed(r: RecallParsed, call: RecallCall = {}): Promise<RecallResult> {
    const kinds = this.selected(r.kinds, r.context);
    const namespaceOf = (k: RecallKind) => fillNamespace(k.namespace, r.context, k.name);
    const profiles = kinds.filter((k) => k.mode === 'profile');
    const collections = kinds.filter((k) => k.mode !== 'profile');
    // Turns are taken as sent (NUL, lone surrogates): the query made of them must reach Postgres.
    const query =
      r.query ??
      storableCopy(
        searchQueries(r.messages ?? [], 8)
          .join('\n')
          .slice(0, 8_000),
      );
    const from: ReadOptions = { consistency: r.consistency ?? 'replica', signal: call.signal };
    // Memories of a megabyte each would otherwise make a recall of 100 MB before its token budget.
    const fit = { ...from, budget: new AnswerBudget(this.answerMaxBytes, '', true) };
    const [profileItems, { found: ranked, degraded }] = await Promise.all([
      this.store.getMany(
        profiles.map((k) => ({ namespace: namespaceOf(k), key: profileKey(k) })),
        from,
      ),
      collections.length && query
        ? this.rank(
            {
              namespaces: unique(collections.map(namespaceOf)),
              kindsAt: kindsAt(collections, namespaceOf),
              query,
              mode: r.mode,
              limit: Math.max(CANDIDATES, r.limit),
              offset: 0,
              recency: r.recency,
              asOf: r.asOf,
              // A recall fills the next prompt: its text ranking alone beats no memories at all.
              textWhenEmbeddingDown: true,
            },
            fit,
          )
        : Promise.resolve({ found: [] as SearchItem[], degraded: undefined }),
    ]);
    const found = dedupe(ranked).slice(0, r.limit);
    const shown = fitBudget(
      profileItems.flatMap((item, i) => (item ? [{ kind: (profiles[i] as RecallKind).name, ...pick(item) }] : [])),
      found.map((m) => ({ kind: m.kind, score: m.score, ...pick(m) })),
      r.tokenBudget,
      call.memoryId,
    );
    // What the application is shown is what it recalls: those TTLs are renewed, no others.
    const ids = new Set([...shown.profiles, ...shown.memories].map((m) => JSON.stringify([m.namespace, m.key])));
    const recalled = [...profileItems, ...found].filter((m) => m && ids.has(JSON.stringify([m.namespace, m.key])));
    await this.refreshed(recalled, r.refreshTtl);
    const offered = profileItems.filter((p) => p !== null).length + found.length;
    const leftOut = offered - shown.profiles.length - shown.memories.length;
    return { ...shown, ...(leftOut > 0 && { leftOut }), ...(degraded && { degraded }) };
  }

  /**
   * Embeds the query (before any connection is borrowed: invariant 8) within the reads'
   * deadline, searches, reranks. With `textWhenEmbeddingDown`, a hybrid ranking whose query
   * cannot be embedded (the embedding model out of reach, failing, rate limited or past the
   * deadline) is its text half alone, and says so in `degraded`.
   */
  private async rank(
    q: {
      namespaces: Namespace[];
      kindsAt?: KindsAt;
      query: string;
      mode: SearchMode;
      limit: number;
      offset: number;
      recency?: { halfLifeMs: number; weight: number } | undefined;
      asOf?: Date | undefined;
      textWhenEmbeddingDown?: boolean;
    },
    from: ReadOptions,
  ): Promise<{ found: SearchItem[]; degraded?: Degraded }> {
    let vector: number[] | undefined;
    let mode = q.mode;
    let degraded: Degraded | undefined;
    if (q.mode !== 'text') {
      try {
        const texts = [{ text: q.query, where: 'the query' }];
        const vectors = await embedWithin(this.reads.queryDeadline, from.signal, (signal) =>
          embedTexts(this.embedder, texts, signal),
        );
        vector = vectors[0];
      } catch (err) {
        if (!(q.textWhenEmbeddingDown && q.mode === 'hybrid' && embeddingDown(err))) throw err;
        mode = 'text';
        degraded = { ranking: 'text', reason: (err as Error).message };
        this.warnDegraded(degraded.reason);
      }
    }
    const found = await this.store.search(
      {
        scope: { namespaces: q.namespaces },
        vector,
        text: q.query,
        mode,
        kindsAt: q.kindsAt,
        filter: [],
        limit: q.limit,
        offset: q.offset,
        recency: q.recency,
        asOf: q.asOf,
      },
      from,
    );
    const ranked = this.rerank && found.length > 0 ? await reranked(this.rerank, q.query, found) : found;
    return degraded ? { found: ranked, degraded } : { found: ranked };
  }

  /** Said at warn, once per window with a count of those held back since. */
  private warnDegraded(reason: string): void {
    const heldBack = this.degradedWarnings.take('recall');
    if (heldBack === null) return;
    this.reads.log?.warn(
      { reason, heldBack },
      `recall ranked by text alone: the query could not be embedded (others like it within ${DEGRADED_WARN_EVERY_S} s are counted in the next line, not logged)`,
    );
  }

  /** The renewal is a write: MemoryDb sends it to the primary, whichever Db served the read. */
  private refreshed<T extends MemoryItem>(items: (T | null)[], refreshTtl: boolean | undefined): Promise<T[]> {
    const live = items.filter((i): i is T => i !== null);
    return (refreshTtl ?? this.refreshTtlOnRead) ? this.store.refreshTtl(live) : Promise.resolve(live);
  }

  /** The kinds asked (all when none), each of whose namespace the context must be able to fill. */
  private selected(names: string[] | undefined, context: Record<string, string>): RecallKind[] {
    const all = this.kinds();
    const unknown = (names ?? []).filter((n) => !all.some((k) => k.name === n));
    if (unknown.length)
      throw new InputError(
        `unknown memory kind(s) ${unknown.join(', ')}; configured: ${all.map((k) => k.name).join(', ')}`,
      );
    const kinds = names ? all.filter((k) => names.includes(k.name)) : [...all];
    const missing = [...new Set(kinds.flatMap((k) => templateVariables(k.namespace)))].filter(
      (v) => !Object.hasOwn(context, v),
    );
    if (missing.length)
      throw new InputError(
        `context is missing ${missing.map((m) => `"${m}"`).join(', ')}, needed by the memory namespaces`,
      );
    return kinds;
  }
}

/** Why a recall was ranked by text alone (RecallResult's `degraded`). */
interface Degraded {
  ranking: 'text';
  reason: string;
}

/** The query's embedding failed for want of the embedding model, not for what it was sent. */
function embeddingDown(err: unknown): boolean {
  return err instanceof UnavailableError && err.dependency === 'embedding-model';
}

function parse<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw invalidInput(`${what} request`, parsed.error);
  return parsed.data;
}

const pick = (m: {
  namespace: Namespace;
  key: string;
  version: number;
  value: Record<string, unknown>;
  updatedAt: Date;
}) => ({
  namespace: m.namespace,
  key: m.key,
  version: m.version,
  value: m.value,
  updatedAt: m.updatedAt,
});

function unique(namespaces: Namespace[]): Namespace[] {
  return [...new Map(namespaces.map((ns) => [JSON.stringify(ns), ns])).values()];
}

/** The same text stored twice (two kinds, two namespaces) is shown once, at its better rank. */
function dedupe(items: SearchItem[]): SearchItem[] {
  const seen = new Set<string>();
  return items.filter((m) => {
    const text = documentText(m.value).trim().toLowerCase();
    if (seen.has(text)) return false;
    seen.add(text);
    return true;
  });
}

/** The reranker's order, kept to the candidates it was given, each once. */
async function reranked(rerank: Reranker, query: string, candidates: SearchItem[]): Promise<SearchItem[]> {
  const byId = new Map(candidates.map((c) => [itemId(c), c]));
  const order = await rerank(query, candidates.slice());
  if (!Array.isArray(order)) throw new TypeError('the recall reranker must return an array of the candidates');
  const kept: SearchItem[] = [];
  for (const item of order) {
    const id = item && typeof item === 'object' ? itemId(item) : '';
    const candidate = byId.get(id);
    if (!candidate) continue;
    byId.delete(id);
    kept.push(candidate);
  }
  return kept;
}

const itemId = (i: Pick<SearchItem, 'namespace' | 'key'>) => JSON.stringify([i.namespace, i.key]);
