import { PermanentError } from '../errors.js';
import type { Embedder } from '../llm/embedder.js';
import { noUsage, type TokenUsage, type UsageSink } from '../observability/usage.js';
import type { Logger } from '../observability/logger.js';
import type { MemoryDb } from '../store/memory-db.js';
import type { ChangedMemory, ChangedNamespace, ConsolidationMark } from '../store/near-duplicates.js';
import { canMerge, type MemoryKind } from './kinds.js';
import type { MemoryManager } from './manager.js';
import { mergeChange } from './merge-commit.js';
import { readGroups } from './merge-groups.js';
import { decideMerges, type MergeRun } from './merge-decisions.js';

/** How much one pass looks at, per namespace. */
export interface MergeLimits {
  /** Changed memories compared per pass, oldest change first; the rest wait for the next pass. */
  changedPerNamespace: number;
  /** Nearest vectors looked at per changed vector. */
  neighbours: number;
  /** Groups shown to the model per namespace (all kinds), and memories per group: prompts stay bounded. */
  maxGroups: number;
  maxGroupSize: number;
}

export const DEFAULT_MERGE_LIMITS: MergeLimits = {
  changedPerNamespace: 100,
  neighbours: 8,
  maxGroups: 20,
  maxGroupSize: 8,
};

export interface MergeSettings {
  manager: MemoryManager;
  embedder: Embedder;
  kinds: MemoryKind[];
  /** Cosine distance under which two memories of one kind are shown to the model together; 0: never. */
  maxDistance: number;
  /** Namespaces looked at per pass, oldest change first; the rest wait for the next pass. */
  maxNamespaces: number;
  limits?: MergeLimits | undefined;
  usage?: UsageSink | undefined;
  /**
   * Whether a namespace's failure is a dependency away for everyone (a model out of reach or
   * refusing every request, Postgres gone), asked of its probe: the pass then stops instead of
   * spending every namespace left on the same outage. Without it every namespace is tried.
   */
  dependencyAway?: ((err: unknown) => Promise<DependencyAway | null>) | undefined;
}

/** A dependency found away during a pass, as the process's probes tell it. */
export interface DependencyAway {
  dependency: string;
  reason: string;
  message: string;
}

export interface ConsolidationOutcome {
  expired: number;
  /** Namespaces compared for near-duplicates. */
  namespaces: number;
  /** Memories removed by merges. */
  merged: number;
  modelCalls: number;
  usage: TokenUsage;
  /** Namespaces whose grouped memories changed while their merge was decided; left for the next pass. */
  conflicts: number;
  /** Namespaces whose merge failed; the others went on. */
  failed: number;
  /** Set when the pass stopped early, a dependency away for everyone: the rest wait for the next pass. */
  stopped?: DependencyAway;
}

export const emptyOutcome = (): ConsolidationOutcome => ({
  expired: 0,
  namespaces: 0,
  merged: 0,
  modelCalls: 0,
  usage: noUsage(),
  conflicts: 0,
  failed: 0,
});

/**
 * One consolidation pass: expire memories past their TTL (with history rows), then merge
 * near-duplicates in the namespaces written since their last pass. Candidates come from vector
 * distance (no model call for a namespace without any); the model decides which of them say the
 * same thing, one call per kind with candidates. The merge commits like a reflection, with the
 * namespace locked and the versions of the grouped memories compared (a change to one of them
 * leaves the group for the next pass), so a pass that dies after its commit and runs again finds
 * nothing left to merge.
 */
export async function consolidate(
  store: MemoryDb,
  actor: string,
  log: Logger,
  merge?: MergeSettings,
  signal?: AbortSignal,
  /** Filled as the pass goes: a caller counts what a pass that fails part way did (scheduler.ts). */
  outcome: ConsolidationOutcome = emptyOutcome(),
): Promise<ConsolidationOutcome> {
  for (;;) {
    // Between batches too: a backlog of expiries (a TTL set on a large store) is many batches,
    // and a closing scheduler must not wait for all of them.
    signal?.throwIfAborted();
    const swept = await store.sweepExpired(actor);
    outcome.expired += swept;
    if (swept === 0) break;
  }
  const kinds = merge && merge.maxDistance > 0 ? merge.kinds.filter(canMerge) : [];
  if (merge && kinds.length) {
    for (const ns of await store.changedNamespaces(merge.maxNamespaces)) {
      signal?.throwIfAborted();
      outcome.namespaces++;
      const nsLog = log.child({ namespace: ns.namespace });
      try {
        await mergeNamespace(store, { ...merge, kinds }, ns, actor, outcome, nsLog, signal);
      } catch (err) {
        // Configuration (a refused key, an unknown model, an output limit) fails every namespace
        // alike: the pass stops and its job fails, where an operator sees it, marking nothing.
        if (signal?.aborted || err instanceof PermanentError) throw err;
        // Anything else must not stop the others; the namespace is tried again at a later pass,
        // its mark unmoved.
        outcome.failed++;
        const away = await merge.dependencyAway?.(err);
        if (away) {
          // Unless its probe says the model or the store is away for everyone: each namespace
          // left would spend its retries on the same outage (minutes a pass, with timeouts),
          // and a provider's rate limit would only be hit harder. The next tick starts over.
          outcome.stopped = away;
          nsLog.warn(
            { err, dependency: away.dependency, reason: away.reason },
            `${away.message}: consolidation pass stopped; the namespaces not yet tried wait for the next pass`,
          );
          break;
        }
        nsLog.warn({ err }, 'merging near-duplicates failed');
      }
    }
  }
  log.info(outcome, 'consolidation done');
  return outcome;
}

async function mergeNamespace(
  store: MemoryDb,
  merge: MergeSettings,
  ns: ChangedNamespace,
  actor: string,
  outcome: ConsolidationOutcome,
  log: Logger,
  signal?: AbortSignal,
): Promise<void> {
  const limits = merge.limits ?? DEFAULT_MERGE_LIMITS;
  const found = await store.nearDuplicateCandidates({
    namespace: ns.namespace,
    kinds: merge.kinds.map((k) => k.name),
    since: ns.since,
    maxDistance: merge.maxDistance,
    changedLimit: limits.changedPerNamespace,
    neighbours: limits.neighbours,
  });
  const { groups: keyGroups, taken } = groupCandidates(found.changed, limits);
  const mark = () => store.markConsolidated(ns.namespace, markThrough(found, taken));
  const { groups, members } = await readGroups(store, ns.namespace, keyGroups);
  if (groups.length === 0) return mark();

  const run: MergeRun = { merge, ns, actor, outcome, log, signal, members, passedOver: false };
  const writes = await decideMerges(run, groups);
  // Memories the model will not answer for: passed over (the mark moves past them) and counted.
  if (run.passedOver) outcome.failed++;
  if (writes.length === 0) return mark();

  signal?.throwIfAborted();
  // Each update and delete compares its memory's version: other writes to the namespace while
  // the model decided (a chatty user's reflections) do not touch what the merge rewrites, and
  // must not turn every pass of a busy namespace into a conflict.
  const applied = await store.apply({ actor, ...mergeChange(groups, members, writes) });
  if (applied.status !== 'applied') {
    outcome.conflicts++;
    log.info(
      { status: applied.status },
      'a grouped memory changed while its merge was decided; left for the next pass',
    );
    return;
  }
  const { updated, deleted } = applied.counts;
  outcome.merged += deleted;
  log.info({ groups: groups.length, updated, deleted }, 'near-duplicates merged');
  await mark();
}

/**
 * Where the next pass starts: after the last memory taken whole when this pass could not take
 * every changed one, at the read's horizon when it took them all.
 */
function markThrough(
  found: Awaited<ReturnType<MemoryDb['nearDuplicateCandidates']>>,
  taken: number,
): ConsolidationMark {
  const last = found.changed[taken - 1];
  return last && (taken < found.changed.length || found.more)
    ? { at: last.changedAt, key: last.key }
    : { at: found.horizon, key: '' };
}

/**
 * Changed memories (oldest first) and their neighbours to groups of keys, joined transitively.
 * A memory is taken whole or not at all: when its candidates would make a group larger than
 * `maxGroupSize` or the groups more than `maxGroups`, the grouping stops before it; `taken`
 * says how many were taken, for the next pass to start after them.
 */
export function groupCandidates(
  changed: ChangedMemory[],
  limits: Pick<MergeLimits, 'maxGroups' | 'maxGroupSize'>,
): { groups: string[][]; taken: number } {
  let groupOf = new Map<string, string[]>();
  for (const [i, memory] of changed.entries()) {
    const next = new Map(groupOf);
    const left = memory.near.filter(({ key }) => !join(next, memory.key, key, limits));
    // The first memory of a pass is taken even when not all its neighbours fit: a cluster larger
    // than a group would otherwise stop every pass at the same place.
    if (left.length && i > 0) return { groups: distinct(groupOf), taken: i };
    groupOf = next;
  }
  return { groups: distinct(groupOf), taken: changed.length };
}

/** Puts `a` and `b` in one group, unless that breaks a bound; says whether it did. */
function join(
  groupOf: Map<string, string[]>,
  a: string,
  b: string,
  limits: Pick<MergeLimits, 'maxGroups' | 'maxGroupSize'>,
): boolean {
  const ga = groupOf.get(a);
  const gb = groupOf.get(b);
  if (ga && ga === gb) return true;
  const joined = [...(ga ?? [a]), ...(gb ?? [b])];
  if (joined.length > limits.maxGroupSize) return false;
  if (!ga && !gb && distinct(groupOf).length >= limits.maxGroups) return false;
  for (const k of joined) groupOf.set(k, joined);
  return true;
}

const distinct = (groupOf: Map<string, string[]>) => [...new Set(groupOf.values())];
