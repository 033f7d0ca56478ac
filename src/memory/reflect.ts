import { randomUUID } from 'node:crypto';
import { PermanentError, RetryableError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import type { Logger } from '../log/logger.js';
import type { ThreadBuffer } from '../queue/buffer.js';
import type { BufferedTurn } from '../queue/schemas.js';
import type { MemoryStore } from '../store/memory-store.js';
import type { MemoryWrite, Namespace } from '../store/types.js';
import { embeddingTexts, type MemoryKind } from './kinds.js';
import type { ExistingMemory, ManagerOp, MemoryManager, TokenUsage } from './manager.js';
import { fillNamespace } from './namespace-template.js';

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
}

export interface ReflectOutcome {
  status: 'applied' | 'nothing-pending';
  turns: number;
  cursor: string | null;
  inserted: number;
  updated: number;
  deleted: number;
  modelCalls: number;
  restarts: number;
  usage: TokenUsage;
  /** Turns were left for a follow-up (the backlog exceeded maxTurns). */
  backlog: boolean;
}

/**
 * The store manager: one reflection of one thread. Reads the thread's unreflected turns, finds
 * relevant memories, asks the model, embeds, then commits memories and the thread cursor in ONE
 * transaction. No connection is held across model calls (invariant 8); a moved cursor or a
 * changed namespace restarts the work with fresh reads, so nothing is applied twice (invariant 3)
 * and concurrent threads of one user neither lose updates nor duplicate facts (invariant 4).
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
    usage: { promptTokens: 0, completionTokens: 0 },
    backlog: false,
  };

  for (;;) {
    opts.signal?.throwIfAborted();
    const cursor = await store.getCursor(threadId);
    const snapshot = await buffer.read(threadId, cursor, settings.maxTurns, settings.contextTurns);
    outcome.cursor = cursor;
    if (snapshot.pending.length === 0) return outcome;
    if (!snapshot.context) throw new PermanentError(`thread ${threadId} has buffered turns but no context in Redis`);

    const turns = snapshot.pending.map((e) => e.turn);
    const kinds = kindsFor(deps.kinds, turns);
    const namespaces = groupByNamespace(kinds, snapshot.context);
    // Versions first, then memories: a commit landing between the two shows up as a conflict.
    const versions = await store.namespaceVersions(namespaces.map((n) => n.namespace));
    const existing = await findExisting(deps, namespaces, turns, opts.signal);

    const result = await deps.manager.extract({ kinds, existing, earlier: snapshot.earlier.map((e) => e.turn), turns, signal: opts.signal });
    outcome.modelCalls += result.calls;
    outcome.usage.promptTokens += result.usage.promptTokens;
    outcome.usage.completionTokens += result.usage.completionTokens;

    const writes = await toWrites(deps, result.ops, namespaces, opts.signal);
    const newCursor = (snapshot.pending.at(-1) as { entryId: string }).entryId;
    await opts.beforeCommit?.();
    opts.signal?.throwIfAborted();
    const applied = await store.apply({
      threadId,
      expectedCursor: cursor,
      newCursor,
      actor: opts.actor,
      namespaceVersions: namespaces.map((n) => ({ namespace: n.namespace, version: versions.get(JSON.stringify(n.namespace)) ?? 0 })),
      writes,
    });

    if (applied.status !== 'applied') {
      outcome.restarts++;
      log.info({ status: applied.status, restarts: outcome.restarts }, 'reflection restarts with fresh reads');
      if (outcome.restarts > settings.maxRestarts) {
        throw new RetryableError(`thread ${threadId}: gave up after ${outcome.restarts} restarts (${applied.status})`);
      }
      continue;
    }

    outcome.status = 'applied';
    outcome.turns += turns.length;
    outcome.cursor = newCursor;
    outcome.inserted += applied.inserted;
    outcome.updated += applied.updated;
    outcome.deleted += applied.deleted;
    const pendingLeft = await buffer.trim(threadId, newCursor, settings.contextTurns);
    outcome.backlog = pendingLeft && snapshot.pending.length >= settings.maxTurns;
    log.info({ turns: turns.length, ...applied, cursor: newCursor, usage: result.usage }, 'reflection committed');
    return outcome;
  }
}

interface NamespaceGroup {
  namespace: Namespace;
  kinds: MemoryKind[];
}

/** Kinds the turns feed: those named by the turns, or all when a turn names none. */
function kindsFor(all: MemoryKind[], turns: BufferedTurn[]): MemoryKind[] {
  if (turns.some((t) => !t.kinds)) return all;
  const named = new Set(turns.flatMap((t) => t.kinds ?? []));
  return all.filter((k) => named.has(k.name));
}

function groupByNamespace(kinds: MemoryKind[], context: Record<string, string>): NamespaceGroup[] {
  const groups = new Map<string, NamespaceGroup>();
  for (const kind of kinds) {
    const namespace = fillNamespace(kind.namespace, context, kind.name);
    const id = JSON.stringify(namespace);
    const group = groups.get(id) ?? { namespace, kinds: [] };
    group.kinds.push(kind);
    groups.set(id, group);
  }
  return [...groups.values()];
}

/**
 * Relevant existing memories: one embedding call for several recent turns (not only the last
 * message, LESSONS: LangMem), then per-namespace exact search, deduplicated, best score first.
 */
async function findExisting(
  deps: ReflectDeps,
  namespaces: NamespaceGroup[],
  turns: BufferedTurn[],
  signal: AbortSignal | undefined,
): Promise<ExistingMemory[]> {
  const queries = [...new Set(turns.filter((t) => t.role !== 'system').map((t) => t.content.slice(0, 2_000)))].slice(-deps.settings.maxQueries);
  if (queries.length === 0) return [];
  const vectors = await deps.embedder.embed(queries, signal);
  const found: ExistingMemory[] = [];
  for (const group of namespaces) {
    const names = new Set(group.kinds.map((k) => k.name));
    const best = new Map<string, { memory: ExistingMemory; score: number }>();
    for (const vector of vectors) {
      for (const hit of await deps.store.search(group.namespace, vector, deps.settings.existingTopK)) {
        if (!names.has(hit.kind)) continue;
        const prev = best.get(hit.key);
        if (!prev || prev.score < hit.score) {
          best.set(hit.key, { memory: { namespace: hit.namespace, key: hit.key, kind: hit.kind, version: hit.version, document: hit.value }, score: hit.score });
        }
      }
    }
    found.push(...[...best.values()].sort((a, b) => b.score - a.score).slice(0, deps.settings.existingTopK).map((b) => b.memory));
  }
  return found;
}

/** Manager ops to store writes, with every changed document embedded in one batched call. */
async function toWrites(deps: ReflectDeps, ops: ManagerOp[], namespaces: NamespaceGroup[], signal: AbortSignal | undefined): Promise<MemoryWrite[]> {
  const kindByName = new Map(deps.kinds.map((k) => [k.name, k]));
  const nsByKind = new Map(namespaces.flatMap((g) => g.kinds.map((k) => [k.name, g.namespace] as const)));
  const texts: string[] = [];
  const pending = ops.map((op) => {
    if (op.op === 'delete') return { op, fields: [] as { field: string; index: number }[] };
    const kind = kindByName.get(op.op === 'insert' ? op.kind : op.target.kind) as MemoryKind;
    const fields = embeddingTexts(kind, op.document).map(({ field, text }) => ({ field, index: texts.push(text) - 1 }));
    return { op, kind, fields };
  });
  const vectors = texts.length ? await deps.embedder.embed(texts, signal) : [];
  const now = Date.now();
  return pending.map(({ op, fields, kind }): MemoryWrite => {
    const embeddings = fields.map((f) => ({ field: f.field, vector: vectors[f.index] as number[] }));
    const expiresAt = kind?.ttlMs ? new Date(now + kind.ttlMs) : null;
    if (op.op === 'insert') {
      return { op: 'insert', namespace: nsByKind.get(op.kind) as Namespace, key: randomUUID(), kind: op.kind, value: op.document, embeddings, expiresAt };
    }
    if (op.op === 'update') {
      return { op: 'update', namespace: op.target.namespace, key: op.target.key, kind: op.target.kind, value: op.document, expectedVersion: op.target.version, embeddings, expiresAt };
    }
    return { op: 'delete', namespace: op.target.namespace, key: op.target.key, expectedVersion: op.target.version };
  });
}
