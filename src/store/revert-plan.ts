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
  /** The history row of the actor's first change to it, whose `before` goes back. */
  source: number;
  /** The history row of the actor's last change to it: any later row is a change since. */
  lastChange: number;
}

/** Per item, in the order the actor first touched them: the state before it, the version after. */
export function planRevert(changes: ActorChange[]): RevertStep[] {
  const steps = new Map<string, RevertStep>();
  for (const c of changes) {
    const id = JSON.stringify([c.namespace, c.key]);
    const versionAfter = c.op === 'delete' ? 0 : c.version;
    const step = steps.get(id);
    if (step) Object.assign(step, { versionAfter, lastChange: c.id });
    else
      steps.set(id, {
        namespace: c.namespace,
        key: c.key,
        kind: c.kind,
        before: c.before,
        beforeValidity: c.beforeValidity,
        versionAfter,
        source: c.id,
        lastChange: c.id,
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
      /** The key's last history row as read (change-set.ts `ifLastChange`). */
      ifLastChange: number | undefined;
      /** The history row whose document goes back (change-set.ts `restores`). */
      restores: number;
      actor: string;
    }
  | {
      op: 'delete';
      namespace: Namespace;
      key: string;
      ifVersion: number | undefined;
      ifLastChange: number | undefined;
      actor: string;
    };

/**
 * The writes that undo the steps, each compared with the version and the last history row the
 * actor left (neither with `force`): what existed before goes back, what the actor created is
 * deleted. A put always needs its document still kept, `force` or not: an erase or an expiry
 * while the undo embedded must not be undone by it.
 */
export function revertOps(steps: RevertStep[], actor: string, force: boolean): RevertOp[] {
  return steps.map((p) => {
    const ifVersion = force ? undefined : p.versionAfter;
    const ifLastChange = force ? undefined : p.lastChange;
    return p.before
      ? {
          op: 'put',
          namespace: p.namespace,
          key: p.key,
          kind: p.kind,
          value: p.before,
          ...validity(p.beforeValidity),
          ifVersion,
          ifLastChange,
          restores: p.source,
          actor,
        }
      : { op: 'delete', namespace: p.namespace, key: p.key, ifVersion, ifLastChange, actor };
  });
}
