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
