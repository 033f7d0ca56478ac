import type { Write } from '../store/change-set.js';
import type { MergeMember } from '../store/merge-members.js';
import type { ExistingMemory } from './tool-calls.js';

/**
 * A merge's writes as committed, and the guards they rely on. Each write also compares the
 * memory's last history row: an erase removes a namespace's history, so a key put again after
 * it starts over at version 1, and a version alone would let the merge write the erased text
 * over the new memory.
 */
export function mergeChange(groups: ExistingMemory[][], members: Map<string, MergeMember>, writes: Write[]) {
  return {
    writes: writes.map((w): Write => {
      const member = members.get(w.key);
      return member && (w.op === 'put' || w.op === 'delete') ? { ...w, ifLastChange: member.lastChange } : w;
    }),
    guards: keptOf(groups, writes),
  };
}

/**
 * The memories a merge keeps in the groups it changes, at the versions read: deleting k2 as a
 * repeat of k1 relies on k1 still saying it (deleted or rewritten meanwhile, the group would be
 * lost). Groups the model left alone need no guard.
 */
function keptOf(groups: ExistingMemory[][], writes: Write[]) {
  const written = new Set(writes.map((w) => w.key));
  return groups
    .filter((g) => g.some((m) => written.has(m.key)))
    .flatMap((g) =>
      g.filter((m) => !written.has(m.key)).map((m) => ({ namespace: m.namespace, key: m.key, version: m.version })),
    );
}
