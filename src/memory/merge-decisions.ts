import { ModelOutputError } from '../errors.js';
import type { Write } from '../store/change-set.js';
import type { ChangedNamespace } from '../store/near-duplicates.js';
import { addUsage } from '../observability/usage.js';
import type { Logger } from '../observability/logger.js';
import type { MergeMember } from '../store/merge-members.js';
import type { ConsolidationOutcome, MergeSettings } from './consolidate.js';
import type { MemoryKind } from './kinds.js';
import { widenKept } from './merge-commit.js';
import { refusedAsTooLong } from './prompt-scope.js';
import type { ExistingMemory, ManagerOp } from './tool-calls.js';
import { toWrites } from './writes.js';

/** One namespace's merge as it is decided: where it reports, and whether anything was passed over. */
export interface MergeRun {
  merge: MergeSettings;
  ns: ChangedNamespace;
  actor: string;
  outcome: ConsolidationOutcome;
  log: Logger;
  signal?: AbortSignal | undefined;
  /** The groups' memories as read, by key: their lifetimes and validity (merge-commit.ts). */
  members: Map<string, MergeMember>;
  /** Set when a request failed about its memories: they are passed over until they change. */
  passedOver: boolean;
}

/** One model call per kind with groups; their answers as writes, changed documents embedded. */
export async function decideMerges(run: MergeRun, groups: ExistingMemory[][]): Promise<Write[]> {
  const writes: Write[] = [];
  for (const kind of run.merge.kinds) {
    const ofKind = groups.filter((g) => g[0]?.kind === kind.name);
    if (ofKind.length === 0) continue;
    try {
      writes.push(...(await decideKind(run, kind, ofKind)));
    } catch (err) {
      if (!aboutContent(err)) throw err;
      // A merged document too long to embed: every pass would fail the same way, so this kind's
      // groups are passed over until they change; the other kinds' merges stand.
      run.passedOver = true;
      run.log.warn({ err, kind: kind.name }, 'merging near-duplicates failed for good; passed over until they change');
    }
  }
  return writes;
}

/** One kind's groups: the model's merges (asked in halves if need be) as writes, embedded. */
async function decideKind(run: MergeRun, kind: MemoryKind, ofKind: ExistingMemory[][]): Promise<Write[]> {
  const { merge, ns, actor, outcome, signal } = run;
  const answered = await mergeInHalves(run, ofKind, (groups) =>
    merge.manager.merge({
      kind,
      groups,
      signal,
      onUsage: (usage) => {
        outcome.modelCalls++;
        addUsage(outcome.usage, usage);
        merge.usage?.record({
          actor,
          namespaces: [ns.namespace],
          purpose: 'merge',
          model: merge.manager.model,
          ...usage,
        });
      },
    }),
  );
  return toWrites({
    ops: widenKept(ofKind, answered, run.members),
    kinds: [kind],
    namespaceOf: () => ns.namespace,
    embedder: merge.embedder,
    signal,
    onEmbeddingUsage: (promptTokens, model) =>
      merge.usage?.record({
        actor,
        namespaces: [ns.namespace],
        purpose: 'embed-documents',
        model,
        promptTokens,
        completionTokens: 0,
      }),
  });
}

/**
 * The model's merges of `groups`, asked in halves when it refuses them as longer than its
 * context: the groups are independent, so each half is a merge of its own. A group too long
 * alone is left as it is (the mark moves past it, as past a group the model filters: asked
 * again when one of its memories changes). At most 2n - 1 requests for n groups (maxGroups).
 */
async function mergeInHalves(
  run: MergeRun,
  groups: ExistingMemory[][],
  ask: (groups: ExistingMemory[][]) => Promise<{ ops: ManagerOp[] }>,
): Promise<ManagerOp[]> {
  const { log, outcome } = run;
  try {
    return keepOneOfEach(groups, (await ask(groups)).ops, log);
  } catch (err) {
    if (!refusedAsTooLong(err)) {
      if (!aboutContent(err)) throw err;
      // A content filter, or an answer the model cannot get right: every pass would fail the
      // same way, so the memories of this request are passed over until they change again;
      // the other requests' merges (another kind, the other half) stand.
      run.passedOver = true;
      const keys = groups.map((g) => g.map((m) => m.key));
      log.warn({ err, keys }, 'merging near-duplicates failed for good; passed over until they change');
      return [];
    }
    // The refused request: a call made, with no usage to record.
    outcome.modelCalls++;
    if (groups.length === 1) {
      const keys = (groups[0] ?? []).map((m) => m.key);
      log.warn({ keys, refusal: err.message }, 'a group too long for the chat model to merge; passed over');
      return [];
    }
    const half = Math.ceil(groups.length / 2);
    log.info(
      { groups: groups.length, refusal: err.message },
      'merge prompt too long for the chat model: asked in halves',
    );
    const first = await mergeInHalves(run, groups.slice(0, half), ask);
    return [...first, ...(await mergeInHalves(run, groups.slice(half), ask))];
  }
}

/**
 * A failure of these memories, not of the model's setup: passed over, not retried. A filter on
 * the answer or on the prompt, a merged document too long to embed (a prompt too long is asked
 * in halves first: mergeInHalves), an answer still invalid after its repair rounds. An answer
 * cut at the output limit is the server's setting: the pass stops.
 */
function aboutContent(err: unknown): boolean {
  return err instanceof ModelOutputError && err.aboutInput;
}

/**
 * A merge keeps at least one memory of every group: deleting them all would drop a fact with
 * no conversation saying it is false. Such a group's operations are left out, the others stand.
 */
function keepOneOfEach(groups: ExistingMemory[][], ops: ManagerOp[], log: Logger): ManagerOp[] {
  const deleted = new Set(ops.flatMap((op) => (op.op === 'delete' ? [op.target] : [])));
  const wiped = groups.filter((g) => g.every((m) => deleted.has(m)));
  if (wiped.length === 0) return ops;
  log.warn(
    { groups: wiped.map((g) => g.map((m) => m.key)) },
    'model deleted every memory of a group; that group is left as it was',
  );
  const spared = new Set(wiped.flat());
  return ops.filter((op) => op.op === 'insert' || !spared.has(op.target));
}
