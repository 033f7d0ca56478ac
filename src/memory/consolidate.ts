import type { Embedder } from '../llm/embedder.js';
import type { UsageSink } from '../llm/usage.js';
import type { Logger } from '../log/logger.js';
import type { MemoryStore } from '../store/memory-store.js';
import type { ChangedNamespace, NearPair } from '../store/near-duplicates.js';
import { canDelete, canUpdate, type MemoryKind } from './kinds.js';
import type { MemoryManager } from './manager.js';
import type { ExistingMemory, ManagerOp } from './tool-calls.js';
import { toWrites } from './writes.js';

export interface MergeSettings {
  manager: MemoryManager;
  embedder: Embedder;
  kinds: MemoryKind[];
  /** Cosine distance under which two memories of one kind are shown to the model together; 0: never. */
  maxDistance: number;
  /** Namespaces looked at per pass, oldest change first; the rest wait for the next pass. */
  maxNamespaces: number;
  usage?: UsageSink | undefined;
}

export interface ConsolidationOutcome {
  expired: number;
  /** Namespaces compared for near-duplicates. */
  namespaces: number;
  /** Memories removed by merges. */
  merged: number;
  modelCalls: number;
  /** Namespaces written to while their merge was decided; left for the next pass. */
  conflicts: number;
}

/** Changed memories compared per namespace and pass, and neighbours looked at per vector. */
const CHANGED_PER_NAMESPACE = 100;
const NEIGHBOURS = 8;
/** Bounds on what one model call is shown: groups per namespace, memories per group. */
const MAX_GROUPS = 20;
const MAX_GROUP_SIZE = 8;

/**
 * One consolidation pass: expire memories past their TTL (with history rows), then merge
 * near-duplicates in the namespaces written since their last pass. Candidates come from vector
 * distance (no model call for a namespace without any); the model decides which of them say the
 * same thing, one call per namespace. The merge commits like a reflection, with the namespace's
 * version compared (a write in between leaves the namespace for the next pass), so a pass that
 * dies after its commit and runs again finds nothing left to merge.
 */
export async function consolidate(store: MemoryStore, actor: string, log: Logger, merge?: MergeSettings): Promise<ConsolidationOutcome> {
  const outcome: ConsolidationOutcome = { expired: 0, namespaces: 0, merged: 0, modelCalls: 0, conflicts: 0 };
  for (;;) {
    const swept = await store.sweepExpired(actor);
    outcome.expired += swept;
    if (swept === 0) break;
  }
  const kinds = merge && merge.maxDistance > 0 ? merge.kinds.filter((k) => canUpdate(k) && canDelete(k)) : [];
  if (merge && kinds.length) {
    for (const ns of await store.changedNamespaces(merge.maxNamespaces)) {
      outcome.namespaces++;
      await mergeNamespace(store, { ...merge, kinds }, ns, actor, outcome, log.child({ namespace: ns.namespace }));
    }
  }
  log.info(outcome, 'consolidation done');
  return outcome;
}

async function mergeNamespace(store: MemoryStore, merge: MergeSettings, ns: ChangedNamespace, actor: string, outcome: ConsolidationOutcome, log: Logger): Promise<void> {
  const pairs = await store.nearDuplicatePairs({
    namespace: ns.namespace,
    kinds: merge.kinds.map((k) => k.name),
    since: ns.since,
    maxDistance: merge.maxDistance,
    changedLimit: CHANGED_PER_NAMESPACE,
    neighbours: NEIGHBOURS,
  });
  const keyGroups = groupPairs(pairs);
  const items = keyGroups.length ? await store.getMany(keyGroups.flat().map((key) => ({ namespace: ns.namespace, key }))) : [];
  const byKey = new Map(items.flatMap((m) => (m ? [[m.key, m] as const] : [])));
  const groups = keyGroups
    .map((keys) =>
      keys.flatMap((key): ExistingMemory[] => {
        const m = byKey.get(key);
        return m ? [{ namespace: ns.namespace, key, kind: m.kind, version: m.version, document: m.value }] : [];
      }),
    )
    .filter((g) => g.length > 1);
  if (groups.length === 0) return store.markConsolidated(ns.namespace, ns.version);

  const decided = await merge.manager.merge({
    kinds: merge.kinds,
    groups,
    onUsage: (usage) => {
      outcome.modelCalls++;
      merge.usage?.record({ actor, namespaces: [ns.namespace], purpose: 'merge', model: merge.manager.model, ...usage });
    },
  });
  const ops = keepOneOfEach(groups, decided.ops, log);
  if (ops.length === 0) return store.markConsolidated(ns.namespace, ns.version);

  const writes = await toWrites({
    ops,
    kinds: merge.kinds,
    namespaceOf: () => ns.namespace,
    embedder: merge.embedder,
    onEmbeddingUsage: (promptTokens, model) => merge.usage?.record({ actor, namespaces: [ns.namespace], purpose: 'embed-documents', model, promptTokens, completionTokens: 0 }),
  });
  const applied = await store.apply({ actor, namespaceVersions: [{ namespace: ns.namespace, version: ns.version }], writes });
  if (applied.status !== 'applied') {
    outcome.conflicts++;
    log.info({ status: applied.status }, 'namespace changed while its merge was decided; left for the next pass');
    return;
  }
  outcome.merged += applied.deleted;
  log.info({ groups: groups.length, updated: applied.updated, deleted: applied.deleted }, 'near-duplicates merged');
  // A commit bumps each namespace it wrote by one: the version this pass leaves behind.
  await store.markConsolidated(ns.namespace, ns.version + 1);
}

/**
 * Pairs (closest first) to groups of keys, joined transitively; a pair that would make a group
 * larger than MAX_GROUP_SIZE is left out, and so is any group past MAX_GROUPS (a later pass sees
 * them, as they are still near each other).
 */
export function groupPairs(pairs: NearPair[]): string[][] {
  const groupOf = new Map<string, string[]>();
  const groups = new Set<string[]>();
  for (const { a, b } of pairs) {
    const ga = groupOf.get(a) ?? [a];
    const gb = groupOf.get(b) ?? [b];
    if (ga === gb || ga.length + gb.length > MAX_GROUP_SIZE) continue;
    if (!groupOf.has(a) && !groupOf.has(b) && groups.size >= MAX_GROUPS) continue;
    const joined = [...ga, ...gb];
    groups.delete(ga);
    groups.delete(gb);
    groups.add(joined);
    for (const key of joined) groupOf.set(key, joined);
  }
  return [...groups];
}

/**
 * A merge keeps at least one memory of every group: deleting them all would drop a fact with
 * no conversation saying it is false. Such a group's operations are left out, the others stand.
 */
function keepOneOfEach(groups: ExistingMemory[][], ops: ManagerOp[], log: Logger): ManagerOp[] {
  const deleted = new Set(ops.flatMap((op) => (op.op === 'delete' ? [op.target] : [])));
  const wiped = groups.filter((g) => g.every((m) => deleted.has(m)));
  if (wiped.length === 0) return ops;
  log.warn({ groups: wiped.map((g) => g.map((m) => m.key)) }, 'model deleted every memory of a group; that group is left as it was');
  const spared = new Set(wiped.flat());
  return ops.filter((op) => op.op === 'insert' || !spared.has(op.target));
}
