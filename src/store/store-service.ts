import { z } from 'zod';
import { invalidInput } from '../core/invalid-input.js';
import type { KindRoute } from '../core/kind-route.js';
import { InputError, LimitError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import type { QueryDeadline } from '../llm/query-deadline.js';
import type { Logger } from '../observability/logger.js';
import { AnswerBudget, DEFAULT_ANSWER_MAX_BYTES, PAGE_ADVICE } from './answer-budget.js';
import { indexTexts, kindsOfPuts } from './index-texts.js';
import type { Write } from './change-set.js';
import { importLines, linesOf, type ImportResult } from './import-lines.js';
import { conflictError } from './conflict-error.js';
import { planRevert, revertOps, validity } from './revert-plan.js';
import type { MemoryDb, ReadOptions } from './memory-db.js';
import {
  batchInputSchema,
  deleteInputSchema,
  getInputSchema,
  historyInputSchema,
  listNamespacesInputSchema,
  putInputSchema,
  revertChangesInputSchema,
  revertItemInputSchema,
  BATCH_MAX_OPS,
  searchInputSchema,
  sharedUndoRefusal,
  type BatchOpParsed,
} from './schemas.js';
import type { BatchResult, IndexedField, HistoryEntry, MemoryItem, Namespace, SearchItem } from './types.js';

export interface StoreOptions {
  /** Computes vectors for puts and queries; without one, items are stored unindexed. */
  embedder?: Embedder | null | undefined;
  /** JSON paths embedded when a put does not say (`$`: the whole value). */
  indexFields: string[];
  /** TTL of items whose put does not say (ms); null: no expiry. */
  defaultTtlMs: number | null;
  /**
   * Kind of new items whose put does not say: the default reflection kind sees them. A put
   * without a kind over a live item keeps that item's kind.
   */
  defaultKind: string;
  /**
   * The service's kinds, asked on a call with puts. A put of a kind gets its TTL (`ttlMs`) and is
   * indexed by its `embedFields` (the whole value without), unless the put says: a kind's
   * retention holds however its memories are written, a revert's put included. A put without a
   * kind that creates an item in a namespace one kind fills (kind-route.ts `kindOfNamespace`)
   * creates that kind's item, so recall and reflections read it; elsewhere, `defaultKind`.
   */
  kinds?: (() => Promise<readonly KindRoute[]>) | undefined;
  /**
   * Whether get and search renew the TTL of the items they return when the call does not say
   * (`refreshTtl`); LangGraph's `refresh_on_read`, and like it true in the service.
   */
  refreshTtlOnRead: boolean;
  /** Recorded in history when a write does not name its actor. */
  actor: string;
  /**
   * STORE_ANSWER_MAX_BYTES: the stored JSON one call may read back (a batch's reads together,
   * a search, a history page); past it the call is refused (LimitError) and reads stop.
   */
  answerMaxBytes?: number | undefined;
  /**
   * QUERY_EMBEDDING_TIMEOUT_MS: how long a call that only reads waits for its queries'
   * embedding (recall.ts has the same); a call that puts waits as a put does.
   */
  queryDeadline?: QueryDeadline | undefined;
  log: Logger;
}

/** What to ask for instead, said when a call's answer would pass its budget. */
const ASK = {
  batch: 'send fewer ops per batch, ask for a smaller `limit` per search, or page with `offset`',
  page: PAGE_ADVICE,
};

export type { BatchResult } from './types.js';

/**
 * An op as the service runs it: a parsed batch op, or a revert's put, which may also put back
 * an invalidation (callers of the store API cannot: an invalidation is a temporal kind's).
 */
type RunOp =
  | BatchOpParsed
  | (Parsed<'put'> & { invalidAt?: string | undefined } & RevertChecks)
  | (Parsed<'delete'> & RevertChecks);
/** What a revert's writes also compare (change-set.ts): the last history row, the one put back. */
type RevertChecks = { ifLastChange?: number | undefined; restores?: number | undefined };
type Parsed<K extends BatchOpParsed['op']> = Extract<BatchOpParsed, { op: K }>;

/** `signal`: the caller went away; the call's reads stop on Postgres (MemoryDb's ReadOptions). */
export type CallOptions = Pick<ReadOptions, 'signal'>;

/**
 * Inputs are `unknown`: this is the validation boundary (HTTP bodies arrive here as they are);
 * StoreClient gives SDK users the typed shapes.
 *
 * The store API (LangGraph store operations plus versions, TTL and history): validates each
 * input with its schema, embeds (one embedding call per batch, before any connection is
 * borrowed), then reads or writes through MemoryDb. The HTTP routes and the SDK both call it.
 */
export class StoreService {
  constructor(
    readonly memories: MemoryDb,
    private readonly opts: StoreOptions,
  ) {}

  async put(input: unknown): Promise<MemoryItem> {
    return (await this.run([{ op: 'put', ...parse(putInputSchema, input, 'put') }]))[0] as MemoryItem;
  }

  async get(input: unknown, options: CallOptions = {}): Promise<MemoryItem | null> {
    return (await this.run([{ op: 'get', ...parse(getInputSchema, input, 'get') }], options))[0] as MemoryItem | null;
  }

  /** True when a live item was deleted. */
  async delete(input: unknown): Promise<boolean> {
    return (await this.run([{ op: 'delete', ...parse(deleteInputSchema, input, 'delete') }]))[0] as boolean;
  }

  async search(input: unknown, options: CallOptions = {}): Promise<SearchItem[]> {
    const op: BatchOpParsed = { op: 'search', ...parse(searchInputSchema, input, 'search') };
    return (await this.run([op], { advice: ASK.page, signal: options.signal }))[0] as SearchItem[];
  }

  async listNamespaces(input: unknown = {}, options: CallOptions = {}): Promise<Namespace[]> {
    const q = parse(listNamespacesInputSchema, input, 'listNamespaces');
    return this.memories.listNamespaces(q, { consistency: q.consistency ?? 'replica', signal: options.signal });
  }

  async history(input: unknown, options: CallOptions = {}): Promise<HistoryEntry[]> {
    const { namespace, key, limit, offset, consistency } = parse(historyInputSchema, input, 'history');
    return this.memories.history(
      namespace,
      key,
      { limit, offset },
      { consistency: consistency ?? 'replica', budget: this.budget(ASK.page), signal: options.signal },
    );
  }

  /**
   * Puts an item back as it was at `version` of its history (a new version, actor
   * `revert:<who>`); the version must be one that set a document (an insert, update or
   * invalidation), and its validity comes back with it: a revert to an invalidation leaves the
   * fact invalid, from when it was. Compare-and-set on the current version with `ifVersion`,
   * else on the key's history as read: any change since is a conflict. Either way the document
   * must still be kept when the put runs: an expired memory, or one erased while the revert
   * embedded, is a conflict, never brought back.
   */
  async revert(input: unknown): Promise<MemoryItem> {
    const r = parse(revertItemInputSchema, input, 'revert');
    // The one row, not the whole log: 300 versions of a 1 MB document were 600 MB read to find it.
    const at = await this.memories.documentAt(r.namespace, r.key, r.version);
    if (!at)
      throw new InputError(
        `${JSON.stringify(r.namespace)} / ${JSON.stringify(r.key)} has no version ${r.version} that set a document`,
      );
    if (at.expired)
      throw conflictError([
        { namespace: r.namespace, key: r.key, expected: r.ifVersion ?? 0, actual: 0, reason: 'gone' },
      ]);
    const [item] = await this.run([
      {
        op: 'put',
        namespace: r.namespace,
        key: r.key,
        kind: at.kind,
        value: at.after,
        ...validity(at),
        ifVersion: r.ifVersion,
        ifLastChange: r.ifVersion === undefined ? at.lastChange : undefined,
        restores: at.id,
        actor: `revert:${r.actor ?? this.opts.actor}`,
      },
    ]);
    return item as MemoryItem;
  }

  /**
   * Undoes everything one actor changed, in one change set: an item it created is deleted, one it
   * changed or deleted gets back what it had before, its validity included (a fact the actor made
   * hold again is invalid again). Each write compares the version the actor
   * left: an item changed since is a 409 (ConflictError listing them) and nothing is written,
   * unless `force`. Returns how many items were put back and deleted.
   */
  async revertChanges(input: unknown): Promise<{ restored: number; deleted: number }> {
    const r = parse(revertChangesInputSchema, input, 'revert');
    // The schema refused the service's shared actors; this store's own default (an SDK's
    // `store.actor`) is every caller's too, and only this store knows it.
    const refused = sharedUndoRefusal(r, this.opts.actor);
    if (refused) throw new InputError(`invalid revert request: ${refused}`);
    const changes = await this.memories.changesBy(r.changedBy, r.namespacePrefix ?? [], BATCH_MAX_OPS + 1);
    const plan = planRevert(changes);
    if (plan.length > BATCH_MAX_OPS)
      throw new LimitError(`${r.changedBy} changed more than ${BATCH_MAX_OPS} items: revert them a prefix at a time`);
    if (plan.length === 0) return { restored: 0, deleted: 0 };
    await this.run(revertOps(plan, `revert:${r.actor ?? this.opts.actor}`, r.force));
    return { restored: plan.filter((p) => p.before).length, deleted: plan.filter((p) => !p.before).length };
  }

  /**
   * An export file's lines (export-format.ts): a header, then the items under the prefixes, each
   * followed by its history when asked. Streamed a page at a time.
   */
  async *exportLines(q: {
    prefixes: Namespace[];
    namespaces?: Namespace[] | undefined;
    history: boolean;
    scope: Record<string, unknown>;
  }): AsyncGenerator<string> {
    yield JSON.stringify({ type: 'export', format: 1, exportedAt: new Date().toISOString(), scope: q.scope });
    for await (const line of this.memories.exportItems(q)) yield JSON.stringify(line);
  }

  /**
   * Imports an export file into empty namespaces, re-embedding its texts (import-lines.ts);
   * `tenant`: into that tenant's namespaces only, its history stamped as the tenant's.
   */
  async import(file: string | AsyncIterable<string> | Iterable<string>, tenant?: string): Promise<ImportResult> {
    return importLines(this.memories, this.opts.embedder ?? null, linesOf(file), tenant);
  }

  /**
   * Several operations with one embedding call. The writes (puts and deletes) apply first, all
   * or nothing in one transaction; then the reads run, in order, and see them. Results are in
   * the order of `ops`: the item for a put, true/false for a delete, the item or null for a get.
   * `signal` stops it between ops (rejecting with its reason): before the writes, nothing is
   * written; a batch of 1,000 searches whose client has gone should not run for minutes.
   */
  async batch(ops: unknown[], options: CallOptions = {}): Promise<BatchResult[]> {
    return this.run(parse(batchInputSchema, { ops }, 'batch').ops, options);
  }

  /** A fresh budget for one call's answer. */
  private budget(advice: string): AnswerBudget {
    return new AnswerBudget(this.opts.answerMaxBytes ?? DEFAULT_ANSWER_MAX_BYTES, advice);
  }

  private async run(ops: RunOp[], call: CallOptions & { advice?: string } = {}): Promise<BatchResult[]> {
    const seen = new Set<string>();
    for (const op of ops) {
      if (op.op !== 'put' && op.op !== 'delete') continue;
      const id = JSON.stringify([op.namespace, op.key]);
      if (seen.has(id)) throw new InputError(`a batch may write ${id} only once`);
      seen.add(id);
    }
    const known = ops.some((op) => op.op === 'put') ? ((await this.opts.kinds?.()) ?? []) : [];
    // By name in a Map: a put's kind is the caller's text, and `constructor` must not find Object's.
    const byName = new Map(known.map((k) => [k.name, k]));
    const kinds = kindsOfPuts(ops, known);
    const indexed = await indexTexts(ops, kinds, byName, this.opts, call.signal);
    call.signal?.throwIfAborted();
    const results = new Array<BatchResult>(ops.length).fill(null);
    await this.write(ops, indexed, kinds, byName, results);
    await this.read(ops, indexed, results, this.budget(call.advice ?? ASK.batch), call.signal);
    return results;
  }

  /** The puts and deletes of `ops`, as one change set: all or nothing. */
  private async write(
    ops: RunOp[],
    indexed: Map<number, IndexedField[]>,
    kinds: Map<number, string>,
    byName: ReadonlyMap<string, KindRoute>,
    results: BatchResult[],
  ) {
    const writeAt = ops.flatMap((op, i) => (op.op === 'put' || op.op === 'delete' ? [i] : []));
    if (writeAt.length === 0) return;
    const writes = writeAt.map((i): Write => {
      const op = ops[i] as Extract<RunOp, { op: 'put' | 'delete' }>;
      const { namespace, key, ifVersion, actor } = op;
      const ifLastChange = 'ifLastChange' in op ? op.ifLastChange : undefined;
      if (op.op === 'delete') return { op: 'delete', namespace, key, ifVersion, ifLastChange, actor };
      const kind = kinds.get(i);
      const kindTtl = kind === undefined ? undefined : byName.get(kind)?.ttlMs;
      const ttl = op.ttl === undefined ? (kindTtl ?? this.opts.defaultTtlMs) : op.ttl;
      return {
        op: 'put',
        namespace,
        key,
        validFrom: op.validFrom,
        invalidAt: 'invalidAt' in op ? op.invalidAt : undefined,
        kind: op.kind,
        defaultKind: kind,
        value: op.value,
        ttl,
        fields: indexed.get(i) ?? [],
        ifVersion,
        ifLastChange,
        restores: 'restores' in op ? op.restores : undefined,
        actor,
      };
    });
    const applied = await this.memories.apply({ actor: this.opts.actor, defaultKind: this.opts.defaultKind, writes });
    if (applied.status === 'conflict') throw conflictError(applied.conflicts);
    if (applied.status !== 'applied') throw new Error(`store writes came back ${applied.status}`);
    this.opts.log.debug(
      { writes: writes.length, namespaces: new Set(writes.map((w) => JSON.stringify(w.namespace))).size },
      'store writes committed',
    );
    applied.results.forEach((r, j) => {
      results[writeAt[j] as number] = r.op === 'put' ? r.item : r.op === 'delete' ? r.deleted : null;
    });
  }

  /**
   * The reads of `ops`, in order, after the writes. They see them: a call that writes reads the
   * primary, as does one with a read that asks for it; any other may be served by a replica.
   */
  private async read(
    ops: BatchOpParsed[],
    indexed: Map<number, IndexedField[]>,
    results: BatchResult[],
    budget: AnswerBudget,
    signal: AbortSignal | undefined,
  ) {
    // One budget for all the reads: each read is cut by Postgres at what the ones before it
    // left, so a batch of many searches stops at the first that would pass it.
    const from: ReadOptions = {
      consistency: ops.some((op) => op.op === 'put' || op.op === 'delete' || op.consistency === 'primary')
        ? 'primary'
        : 'replica',
      budget,
      signal,
    };
    // All the gets in one statement, however many (a statement each was a round trip each).
    const getAt = ops.flatMap((op, i) => (op.op === 'get' ? [i] : []));
    const got = await this.memories.getMany(
      getAt.map((i) => ops[i] as Parsed<'get'>),
      from,
    );
    getAt.forEach((i, j) => (results[i] = got[j] ?? null));

    const refreshAt: number[] = [];
    for (const [i, op] of ops.entries()) {
      signal?.throwIfAborted();
      if (op.op === 'listNamespaces') results[i] = await this.memories.listNamespaces(op, from);
      else if (op.op === 'search') {
        results[i] = await this.memories.search(
          {
            scope: { prefix: op.namespacePrefix },
            vector: indexed.get(i)?.[0]?.vector,
            text: op.query,
            mode: op.query === undefined ? undefined : (op.mode ?? 'vector'),
            filter: op.filter ?? [],
            limit: op.limit,
            offset: op.offset,
            exact: op.exact,
            asOf: op.asOf,
          },
          from,
        );
      }
      if ((op.op === 'get' || op.op === 'search') && (op.refreshTtl ?? this.opts.refreshTtlOnRead)) refreshAt.push(i);
    }
    await this.refresh(results, refreshAt);
  }

  /**
   * An application reading items is recalling them: one TTL refresh for all the reads of the
   * call that did not opt out; their results come back with the renewed expiries.
   */
  private async refresh(results: BatchResult[], at: number[]): Promise<void> {
    const read = (i: number) => results[i] as MemoryItem | MemoryItem[] | null;
    const items = at.flatMap((i) => read(i) ?? []);
    if (items.length === 0) return;
    const renewed = await this.memories.refreshTtl(items);
    let next = 0;
    for (const i of at) {
      const r = read(i);
      if (Array.isArray(r)) results[i] = renewed.slice(next, (next += r.length));
      else if (r) results[i] = renewed[next++] as MemoryItem;
    }
  }
}

function parse<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  // Over HTTP: a DELETE (or any call) sent without its body; zod alone says "expected object".
  if (input === undefined)
    throw new InputError(
      `invalid ${what} request: nothing was sent; send its fields as a JSON object (the request body)`,
    );
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw invalidInput(`${what} request`, parsed.error);
  return parsed.data;
}
