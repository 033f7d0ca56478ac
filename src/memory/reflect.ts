import { PermanentError, RetryableError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import { addUsage, noUsage, type TokenUsage, type UsageRecord, type UsageSink } from '../observability/usage.js';
import type { Logger } from '../observability/logger.js';
import type { BufferedEntry, ThreadBuffer } from '../queue/buffer.js';
import type { BufferedTurn } from '../queue/schemas.js';
import type { Write } from '../store/change-set.js';
import { isErasedCursor } from '../store/erase.js';
import type { MemoryDb } from '../store/memory-db.js';
import type { NamespaceSnapshot } from '../store/snapshot.js';
import type { Namespace } from '../store/types.js';
import type { MemoryKind } from './kinds.js';
import type { MemoryManager } from './manager.js';
import {
  checkThreadTenant,
  existingMemories,
  groupByNamespace,
  kindsFor,
  namespaceOf,
  sameKinds,
  searchQueries,
  snapshotSignature,
  type NamespaceGroup,
} from './reflection-plan.js';
import { commitWithRetry } from './commit-retry.js';
import {
  cutTurns,
  MAX_NARROWINGS,
  narrower,
  refusedAsTooLong,
  type Narrowing,
  type PromptScope,
} from './prompt-scope.js';
import { toWrites } from './writes.js';

export interface ReflectSettings {
  /** Already-reflected turns shown as context, and kept in the buffer for the next reflection. */
  contextTurns: number;
  /** Existing memories shown to the model per namespace (bounded: prompts stay flat as memory grows). */
  existingTopK: number;
  /** Turns per reflection; a longer backlog is handled by follow-ups. */
  maxTurns: number;
  /** Queries (recent turns) used to find relevant existing memories. */
  maxQueries: number;
  /** Re-runs after a version conflict or a moved cursor before giving up for this attempt. */
  maxRestarts: number;
}

export interface ReflectDeps {
  /** A thread's buffer by its id: one ThreadBuffer, or every shard's (ThreadBuffers). */
  buffer: Pick<ThreadBuffer, 'read' | 'trim'>;
  store: MemoryDb;
  embedder: Embedder;
  manager: MemoryManager;
  kinds: MemoryKind[];
  settings: ReflectSettings;
  log: Logger;
  /** Receives the token usage of every model request, tagged with the job and namespaces. */
  usage?: UsageSink | undefined;
}

export interface ReflectOutcome {
  status: 'applied' | 'nothing-pending';
  turns: number;
  cursor: string | null;
  inserted: number;
  updated: number;
  deleted: number;
  /** Memories of temporal kinds that stopped holding (kept, with their time). */
  invalidated: number;
  /** Chat model calls (repair rounds and re-runs after conflicts included). */
  modelCalls: number;
  restarts: number;
  /** Conflicts resolved without a model call: the memories the model saw had not changed. */
  rebased: number;
  /** Chat tokens of this run (repairs and re-runs included). */
  usage: TokenUsage;
  embeddingTokens: number;
  namespaces: Namespace[];
  /** Turns were left for a follow-up (the backlog exceeded maxTurns, or a narrower prompt's batch). */
  backlog: boolean;
  /** Prompts the model refused as too long, by what the next one left out (prompt-scope.ts). */
  narrowed: Record<Narrowing, number>;
}

export interface ReflectOptions {
  actor: string;
  signal?: AbortSignal | undefined;
  /**
   * Called right before the commit, with nothing held: the executor uses it to abort a
   * reflection whose thread received new turns under the `rollback` policy.
   */
  beforeCommit?: () => Promise<void>;
}

/**
 * The store manager: one reflection of one thread, in three steps. Read: the thread's
 * unreflected turns, their kinds and namespaces, the query vectors, and a snapshot of the
 * relevant memories. Decide: the model's operations, as writes with their documents embedded.
 * Commit: memories and the thread cursor in ONE change set (the store's writer). No connection is
 * held across model calls (invariant 8).
 *  - A moved cursor (a duplicate delivery or a retry after a commit) restarts from the cursor:
 *    the applied turns are gone from the read, so nothing is applied twice (invariant 3).
 *  - A changed namespace (another thread of the user committed) re-reads the memories; if the
 *    model would see the same ones, the decision stands and only the commit is retried, else the
 *    model runs again with the fresh memories, so no update is lost and no fact is inserted
 *    twice (invariant 4). Both are bounded by `maxRestarts`, then the job's retry takes over.
 */
export function reflectThread(deps: ReflectDeps, threadId: string, opts: ReflectOptions): Promise<ReflectOutcome> {
  return new Reflection(deps, threadId, opts).run();
}

/** One read of the thread's turns, and what follows from it. */
interface Batch {
  cursor: string | null;
  newCursor: string;
  pending: BufferedEntry[];
  /** Turns after these were sent for other kinds: the run goes on to them. */
  otherKinds: boolean;
  earlier: BufferedTurn[];
  turns: BufferedTurn[];
  kinds: MemoryKind[];
  groups: NamespaceGroup[];
  /** Embedded once per read; re-runs after a conflict reuse them. */
  vectors: number[][];
}

type Decision = { signature: string; writes: Write[] };

class Reflection {
  readonly outcome: ReflectOutcome = {
    status: 'nothing-pending',
    turns: 0,
    cursor: null,
    inserted: 0,
    updated: 0,
    deleted: 0,
    invalidated: 0,
    modelCalls: 0,
    restarts: 0,
    rebased: 0,
    usage: noUsage(),
    embeddingTokens: 0,
    namespaces: [],
    backlog: false,
    narrowed: { 'fewer-turns': 0, 'no-earlier': 0, 'cut-turn': 0 },
  };
  private readonly log: Logger;
  /** What the prompt shows of the thread: the settings', until the model refuses one as too long. */
  private scope: PromptScope;

  constructor(
    private readonly deps: ReflectDeps,
    private readonly threadId: string,
    private readonly opts: ReflectOptions,
  ) {
    this.log = deps.log.child({ threadId });
    const { maxTurns, contextTurns } = deps.settings;
    this.scope = { maxTurns, contextTurns, turnChars: Infinity };
  }

  async run(): Promise<ReflectOutcome> {
    for (;;) {
      this.opts.signal?.throwIfAborted();
      const batch = await this.read();
      if (!batch) return this.outcome;
      let decided: Decision | null = null;
      for (;;) {
        const snapshots = await this.deps.store.reflectionSnapshot(
          batch.groups,
          batch.vectors,
          this.deps.settings.existingTopK,
        );
        decided = await this.decide(batch, snapshots, decided).catch((err: unknown) => this.narrow(batch, err));
        // Refused as too long: read again, a narrower batch.
        if (!decided) break;
        const status = await this.commit(batch, snapshots, decided.writes);
        if (status === 'applied' && !this.goesOn(batch)) return this.outcome;
        if (status === 'applied') break;
        // A moved cursor: another run applied these turns; read again from the new cursor.
        this.restart(status === 'duplicate' ? 'stale-cursor' : 'conflict');
        if (status === 'duplicate') break;
      }
    }
  }

  /** The turns after the cursor and what they need; null when none is pending. */
  private async read(): Promise<Batch | null> {
    const { buffer, store, settings } = this.deps;
    const { scope } = this;
    const cursor = await store.cursor(this.threadId);
    // After an erase the cursor is an epoch, not a turn: every turn buffered since is pending.
    const after = isErasedCursor(cursor) ? null : cursor;
    const read = await buffer.read(this.threadId, after, scope.maxTurns, scope.contextTurns);
    this.outcome.cursor = cursor;
    if (read.pending.length === 0) {
      // A run that committed but died before trimming left the buffer and the maxWait ceiling
      // behind; trimming is idempotent, so finish it (else the ceiling sweeper keeps waking it).
      if (after) await buffer.trim(this.threadId, after, settings.contextTurns);
      return null;
    }
    if (!read.context) throw new PermanentError(`thread ${this.threadId} has buffered turns but no context in Redis`);
    // One reflection feeds one set of kinds: the model cannot be told which turn may feed which
    // kind, so turns sent for other kinds wait for the next run (this one goes on to them).
    const pending = sameKinds(read.pending);
    const turns = cutTurns(
      pending.map((e) => e.turn),
      scope.turnChars,
    );
    const kinds = kindsFor(this.deps.kinds, turns);
    const groups = groupByNamespace(kinds, read.context);
    checkThreadTenant(this.threadId, groups);
    // A run that goes on past a narrowed batch (goesOn) names every namespace it read.
    const named = new Set(this.outcome.namespaces.map((n) => JSON.stringify(n)));
    for (const g of groups) if (!named.has(JSON.stringify(g.namespace))) this.outcome.namespaces.push(g.namespace);
    const queries = searchQueries(turns, settings.maxQueries);
    const searched = groups.some((g) => g.kinds.length > 0) && queries.length > 0;
    const vectors = searched
      ? await this.deps.embedder.embed(queries, this.opts.signal, this.onEmbedding('embed-queries'))
      : [];
    const newCursor = (pending.at(-1) as BufferedEntry).entryId;
    return {
      cursor,
      newCursor,
      pending,
      otherKinds: pending.length < read.pending.length,
      earlier: read.earlier.map((e) => e.turn),
      turns,
      kinds,
      groups,
      vectors,
    };
  }

  /** The model's decision on this snapshot, or the previous one when the model would see the same memories. */
  private async decide(batch: Batch, snapshots: NamespaceSnapshot[], previous: Decision | null): Promise<Decision> {
    const signature = snapshotSignature(snapshots);
    if (previous && previous.signature === signature) {
      this.outcome.rebased++;
      return previous;
    }
    const { manager, embedder } = this.deps;
    const result = await manager.extract({
      kinds: batch.kinds,
      existing: existingMemories(snapshots),
      earlier: batch.earlier,
      turns: batch.turns,
      signal: this.opts.signal,
      log: this.log,
      onUsage: (usage) => {
        this.outcome.modelCalls++;
        addUsage(this.outcome.usage, usage);
        this.record('extract', manager.model, usage);
      },
    });
    const last = batch.turns.at(-1) as BufferedTurn;
    const writes = await toWrites({
      ops: result.ops,
      kinds: batch.kinds,
      namespaceOf: namespaceOf(batch.groups),
      embedder,
      signal: this.opts.signal,
      onEmbeddingUsage: this.onEmbedding('embed-documents'),
      // The turns' own time, not the reflection's: what they say held from when it was said, by
      // the turn the model named (a batch can span years: a backfill, a maxWait ceiling), else
      // the last one.
      validAt: (op) => (op.turn === undefined ? last : (batch.turns[op.turn] ?? last)).createdAt,
    });
    return { signature, writes };
  }

  /** Memories and cursor in one change set, then the buffer trimmed. */
  private async commit(
    batch: Batch,
    snapshots: NamespaceSnapshot[],
    writes: Write[],
  ): Promise<'applied' | 'conflict' | 'duplicate'> {
    await this.opts.beforeCommit?.();
    this.opts.signal?.throwIfAborted();
    const changes = {
      actor: this.opts.actor,
      threadId: this.threadId,
      once: { cursor: { threadId: this.threadId, expected: batch.cursor, next: batch.newCursor } },
      reads: snapshots.map((s) => ({ namespace: s.namespace, version: s.version })),
      writes,
    };
    const applied = await commitWithRetry(() => this.deps.store.apply(changes), this.log, this.opts.signal);
    if (applied.status !== 'applied') return applied.status;
    const { outcome } = this;
    outcome.status = 'applied';
    outcome.turns += batch.turns.length;
    outcome.cursor = batch.newCursor;
    outcome.inserted += applied.counts.inserted;
    outcome.updated += applied.counts.updated;
    outcome.deleted += applied.counts.deleted;
    outcome.invalidated += applied.counts.invalidated;
    // Committed is committed: a failed trim must not fail the job (its retries would apply
    // nothing, and the last one would park a thread that is fine). The next reflection of the
    // thread, or the ceiling sweeper, finishes it.
    const { buffer, settings } = this.deps;
    const pendingLeft = await buffer
      .trim(this.threadId, batch.newCursor, settings.contextTurns)
      .catch((err: unknown) => {
        this.log.warn({ err }, 'buffer trim after commit failed; the next reflection finishes it');
        return true;
      });
    outcome.backlog = pendingLeft && (batch.pending.length >= this.scope.maxTurns || batch.otherKinds);
    this.log.info(
      {
        turns: batch.turns.length,
        ...applied.counts,
        cursor: batch.newCursor,
        usage: outcome.usage,
        restarts: outcome.restarts,
      },
      'reflection committed',
    );
    return 'applied';
  }

  /**
   * After a commit: whether this run reflects the next turns itself: when they were sent for
   * other kinds than the ones just committed (turns already settled, waiting for no debounce),
   * or when a narrower prompt left some of what one reflection takes (maxTurns) for later: a follow-up job would start
   * from the settings' scope and be refused down to this one again, a refused request per
   * halving for every narrowed batch. The run stops once it has taken maxTurns, about what one
   * unnarrowed reflection takes, so a long backlog still goes to follow-ups, as before.
   */
  private goesOn(batch: Batch): boolean {
    const { maxTurns } = this.deps.settings;
    const narrowed = this.scope.maxTurns < maxTurns;
    if (!this.outcome.backlog || !(narrowed || batch.otherKinds) || this.outcome.turns >= maxTurns) return false;
    this.outcome.backlog = false;
    this.log.debug({ turns: this.outcome.turns, scope: this.scope.maxTurns }, 'reflecting the next narrowed batch');
    return true;
  }

  /**
   * The model refused the prompt as longer than its context: show less and ask again rather than
   * fail, which would park the thread for good (prompt-scope.ts). Null: read again. The refused
   * request counts as a model call (it has no usage to record).
   */
  private narrow(batch: Batch, err: unknown): null {
    const total = Object.values(this.outcome.narrowed).reduce((a, b) => a + b, 0);
    const next = refusedAsTooLong(err) && total < MAX_NARROWINGS ? narrower(this.scope, batch) : null;
    if (!next) throw err;
    this.outcome.modelCalls++;
    this.outcome.narrowed[next.how]++;
    this.scope = next.scope;
    this.log.info(
      {
        how: next.how,
        shown: { turns: batch.turns.length, earlier: batch.earlier.length },
        next: { ...next.scope, turnChars: Number.isFinite(next.scope.turnChars) ? next.scope.turnChars : null },
        refusal: (err as Error).message,
      },
      'prompt too long for the chat model: reflecting less',
    );
    return null;
  }

  private restart(why: 'conflict' | 'stale-cursor') {
    this.outcome.restarts++;
    this.log.info({ why, restarts: this.outcome.restarts }, 'reflection restarts');
    if (this.outcome.restarts > this.deps.settings.maxRestarts) {
      throw new RetryableError(`thread ${this.threadId}: gave up after ${this.outcome.restarts} restarts (${why})`);
    }
  }

  private record(purpose: UsageRecord['purpose'], model: string, usage: TokenUsage) {
    this.deps.usage?.record({
      actor: this.opts.actor,
      threadId: this.threadId,
      namespaces: this.outcome.namespaces,
      purpose,
      model,
      ...usage,
    });
  }

  private onEmbedding(purpose: 'embed-queries' | 'embed-documents') {
    return (promptTokens: number, model: string) => {
      this.outcome.embeddingTokens += promptTokens;
      this.record(purpose, model, { promptTokens, completionTokens: 0 });
    };
  }
}
