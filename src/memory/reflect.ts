import { PermanentError, RetryableError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import { addUsage, noUsage, type TokenUsage, type UsageRecord, type UsageSink } from '../observability/usage.js';
import type { Logger } from '../observability/logger.js';
import type { ThreadBuffer } from '../queue/buffer.js';
import type { BufferedTurn } from '../queue/schemas.js';
import type { MemoryStore } from '../store/memory-store.js';
import type { MemoryWrite, Namespace } from '../store/types.js';
import { profileKey, type MemoryKind } from './kinds.js';
import type { MemoryManager } from './manager.js';
import { fillNamespace } from '../core/namespace-template.js';
import { readSnapshot, snapshotSignature, type SnapshotRequest } from './reflection-snapshot.js';
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
  buffer: ThreadBuffer;
  store: MemoryStore;
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
  /** Chat model calls (repair rounds and re-runs after conflicts included). */
  modelCalls: number;
  restarts: number;
  /** Conflicts resolved without a model call: the memories the model saw had not changed. */
  rebased: number;
  /** Chat tokens of this run (repairs and re-runs included). */
  usage: TokenUsage;
  embeddingTokens: number;
  namespaces: Namespace[];
  /** Turns were left for a follow-up (the backlog exceeded maxTurns). */
  backlog: boolean;
}

/**
 * The store manager: one reflection of one thread. Reads the thread's unreflected turns, finds
 * the relevant memories, asks the model, embeds, then commits memories and the thread cursor in
 * ONE transaction (store.apply). No connection is held across model calls (invariant 8).
 *  - A moved cursor (a duplicate delivery or a retry after a commit) restarts from the cursor:
 *    the applied turns are gone from the read, so nothing is applied twice (invariant 3).
 *  - A changed namespace (another thread of the user committed) re-reads the memories; if the
 *    model would see the same ones, the decision stands and only the commit is retried, else the
 *    model runs again with the fresh memories, so no update is lost and no fact is inserted
 *    twice (invariant 4). Both are bounded by `maxRestarts`, then the job's retry takes over.
 */
export async function reflectThread(
  deps: ReflectDeps,
  threadId: string,
  opts: {
    actor: string;
    signal?: AbortSignal | undefined;
    /**
     * Called right before the commit, with nothing held: the executor uses it to abort a
     * reflection whose thread received new turns under the `rollback` policy.
     */
    beforeCommit?: () => Promise<void>;
  },
): Promise<ReflectOutcome> {
  const { buffer, store, settings } = deps;
  const signal = opts.signal;
  const log = deps.log.child({ threadId });
  const outcome: ReflectOutcome = {
    status: 'nothing-pending',
    turns: 0,
    cursor: null,
    inserted: 0,
    updated: 0,
    deleted: 0,
    modelCalls: 0,
    restarts: 0,
    rebased: 0,
    usage: noUsage(),
    embeddingTokens: 0,
    namespaces: [],
    backlog: false,
  };
  const restart = (why: string) => {
    outcome.restarts++;
    log.info({ why, restarts: outcome.restarts }, 'reflection restarts');
    if (outcome.restarts > settings.maxRestarts)
      throw new RetryableError(`thread ${threadId}: gave up after ${outcome.restarts} restarts (${why})`);
  };

  for (;;) {
    signal?.throwIfAborted();
    const cursor = await store.getCursor(threadId);
    const read = await buffer.read(threadId, cursor, settings.maxTurns, settings.contextTurns);
    outcome.cursor = cursor;
    if (read.pending.length === 0) {
      // A run that committed but died before trimming left the buffer and the maxWait ceiling
      // behind; trimming is idempotent, so finish it (else the ceiling sweeper keeps waking it).
      if (cursor) await buffer.trim(threadId, cursor, settings.contextTurns);
      return outcome;
    }
    if (!read.context) throw new PermanentError(`thread ${threadId} has buffered turns but no context in Redis`);

    const turns = read.pending.map((e) => e.turn);
    const kinds = kindsFor(deps.kinds, turns);
    const groups = groupByNamespace(kinds, read.context);
    const namespaceOf = (kind: string) => (groups.find((g) => g.all.includes(kind)) as SnapshotRequest).namespace;
    const requests: SnapshotRequest[] = groups.map(({ namespace, kinds: searchedKinds, profiles }) => ({
      namespace,
      kinds: searchedKinds,
      profiles,
    }));
    outcome.namespaces = groups.map((g) => g.namespace);
    const record = (purpose: UsageRecord['purpose'], model: string, usage: TokenUsage) =>
      deps.usage?.record({ actor: opts.actor, threadId, namespaces: outcome.namespaces, purpose, model, ...usage });
    const onEmbedding = (purpose: 'embed-queries' | 'embed-documents') => (promptTokens: number, model: string) => {
      outcome.embeddingTokens += promptTokens;
      record(purpose, model, { promptTokens, completionTokens: 0 });
    };

    // Queries are embedded once per read of the turns; re-runs after a conflict reuse them.
    const queries = searchQueries(turns, settings.maxQueries);
    const searched = groups.some((g) => g.kinds.length > 0);
    const vectors =
      searched && queries.length ? await deps.embedder.embed(queries, signal, onEmbedding('embed-queries')) : [];
    const newCursor = (read.pending.at(-1) as { entryId: string }).entryId;
    let decided: { signature: string; writes: MemoryWrite[] } | null = null;

    for (;;) {
      const snapshots = await readSnapshot(store, requests, vectors, settings.existingTopK);
      const signature = snapshotSignature(snapshots);
      if (decided && decided.signature === signature) {
        outcome.rebased++;
      } else {
        const result = await deps.manager.extract({
          kinds,
          existing: snapshots.flatMap((s) => [...s.profiles, ...s.memories]),
          earlier: read.earlier.map((e) => e.turn),
          turns,
          signal,
          onUsage: (usage) => {
            outcome.modelCalls++;
            addUsage(outcome.usage, usage);
            record('extract', deps.manager.model, usage);
          },
        });
        const writes = await toWrites({
          ops: result.ops,
          kinds,
          namespaceOf,
          embedder: deps.embedder,
          signal,
          onEmbeddingUsage: onEmbedding('embed-documents'),
        });
        decided = { signature, writes };
      }

      await opts.beforeCommit?.();
      signal?.throwIfAborted();
      const applied = await store.apply({
        threadId,
        expectedCursor: cursor,
        newCursor,
        actor: opts.actor,
        namespaceVersions: snapshots.map((s) => ({ namespace: s.namespace, version: s.version })),
        writes: decided.writes,
      });
      if (applied.status === 'conflict') {
        restart('conflict');
        continue;
      }
      if (applied.status === 'stale-cursor') break;

      outcome.status = 'applied';
      outcome.turns += turns.length;
      outcome.cursor = newCursor;
      outcome.inserted += applied.inserted;
      outcome.updated += applied.updated;
      outcome.deleted += applied.deleted;
      // Committed is committed: a failed trim must not fail the job (its retries would apply
      // nothing, and the last one would park a thread that is fine). The next reflection of the
      // thread, or the ceiling sweeper, finishes it.
      const pendingLeft = await buffer.trim(threadId, newCursor, settings.contextTurns).catch((err: unknown) => {
        log.warn({ err }, 'buffer trim after commit failed; the next reflection finishes it');
        return true;
      });
      outcome.backlog = pendingLeft && read.pending.length >= settings.maxTurns;
      log.info(
        { turns: turns.length, ...applied, cursor: newCursor, usage: outcome.usage, restarts: outcome.restarts },
        'reflection committed',
      );
      return outcome;
    }
    restart('stale-cursor');
  }
}

/** Kinds the turns feed: those named by the turns, or all when a turn names none. */
function kindsFor(all: MemoryKind[], turns: BufferedTurn[]): MemoryKind[] {
  if (turns.some((t) => !t.kinds)) return all;
  const named = new Set(turns.flatMap((t) => t.kinds ?? []));
  return all.filter((k) => named.has(k.name));
}

/** The namespaces a reflection reads and writes, with the collection kinds and the profiles (kind and key) of each. */
function groupByNamespace(
  kinds: MemoryKind[],
  context: Record<string, string>,
): (SnapshotRequest & { kinds: string[]; all: string[] })[] {
  const groups = new Map<string, SnapshotRequest & { kinds: string[]; all: string[] }>();
  for (const kind of kinds) {
    const namespace = fillNamespace(kind.namespace, context, kind.name);
    const id = JSON.stringify(namespace);
    const group = groups.get(id) ?? { namespace, kinds: [], profiles: [], all: [] };
    if (kind.mode === 'profile') group.profiles.push({ key: profileKey(kind), kind: kind.name });
    else group.kinds.push(kind.name);
    group.all.push(kind.name);
    groups.set(id, group);
  }
  return [...groups.values()];
}

/**
 * Several recent turns, not only the last message (LESSONS: LangMem searched with the last one
 * only): distinct texts of the newest non-system turns, each cut to what an embedding needs.
 */
export function searchQueries(turns: Pick<BufferedTurn, 'role' | 'content'>[], max: number): string[] {
  const texts = turns.filter((t) => t.role !== 'system').map((t) => t.content.slice(0, 2_000));
  return [...new Set(texts)].slice(-max);
}
