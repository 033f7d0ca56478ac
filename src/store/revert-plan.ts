import type { ActorChange, RowValidity } from './read-items.js';
import type { Namespace } from './types.js';

/** What undoing one actor's changes does to one item. */
export interface RevertStep {
  namespace: Namespace;
  key: string;
  kind: string;
  /** The document before the actor's first change to it; null: it did not exist, so delete it. */
  before: Record<string, unknown> | null;
  /** The validity `before` had: an item the actor made hold again goes back to not holding. */
  beforeValidity: RowValidity;
  /** The item's live version the actor left (0 when its last change deleted it). */
  versionAfter: number;
}

/** Per item, in the order the actor first touched them: the state before it, the version after. */
export function planRevert(changes: ActorChange[]): RevertStep[] {
  const steps = new Map<string, RevertStep>();
  for (const c of changes) {
    const id = JSON.stringify([c.namespace, c.key]);
    const versionAfter = c.op === 'delete' ? 0 : c.version;
    const step = steps.get(id);
    if (step) step.versionAfter = versionAfter;
    else
      steps.set(id, {
        namespace: c.namespace,
        key: c.key,
        kind: c.kind,
        before: c.before,
        beforeValidity: c.beforeValidity,
        versionAfter,
      });
  }
  return [...steps.values()];
}

/** A put of what a history row's change left: its validity, where it was recorded. */
export const validity = (v: RowValidity): { validFrom?: string; invalidAt?: string } => ({
  ...(v.validFrom && { validFrom: v.validFrom.toISOString() }),
  ...(v.invalidAt && { invalidAt: v.invalidAt.toISOString() }),
});

/** A revert's write, as the store runs it: a put of the earlier document, or a delete. */
export type RevertOp =
  | {
      op: 'put';
      namespace: Namespace;
      key: string;
      kind: string;
      value: Record<string, unknown>;
      validFrom?: string;
      invalidAt?: string;
      ifVersion: number | undefined;
      actor: string;
    }
  | { op: 'delete'; namespace: Namespace; key: string; ifVersion: number | undefined; actor: string };

/**
 * The writes that undo the steps, each compared with the version the actor left (none with
 * `force`): what existed before goes back, what the actor created is deleted.
 */
export function revertOps(steps: RevertStep[], actor: string, force: boolean): RevertOp[] {
  return steps.map((p) => {
    const ifVersion = force ? undefined : p.versionAfter;
    return p.before
      ? {
          op: 'put',
          namespace: p.namespace,
          key: p.key,
          kind: p.kind,
          value: p.before,
          ...validity(p.beforeValidity),
          ifVersion,
          actor,
        }
      : { op: 'delete', namespace: p.namespace, key: p.key, ifVersion, actor };
  });
}
