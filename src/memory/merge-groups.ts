import type { MemoryDb } from '../store/memory-db.js';
import type { MergeMember } from '../store/merge-members.js';
import type { Namespace } from '../store/types.js';
import type { ExistingMemory } from './tool-calls.js';

/** The groups as the model is shown them, and what the commit needs of each memory, by key. */
export interface ReadGroups {
  groups: ExistingMemory[][];
  members: Map<string, MergeMember>;
}

/**
 * The groups' memories as they are now; a group left with one memory is no group. A memory
 * invalidated since the candidates were read is left out: it no longer holds, and a merge would
 * carry what it said into a memory that does (and delete the record that it stopped holding).
 */
export async function readGroups(store: MemoryDb, namespace: Namespace, keyGroups: string[][]): Promise<ReadGroups> {
  const read = await store.mergeMembers(namespace, keyGroups.flat());
  const members = new Map(read.filter((m) => !m.invalidated).map((m) => [m.key, m]));
  const groups = keyGroups
    .map((keys) =>
      keys.flatMap((key): ExistingMemory[] => {
        const m = members.get(key);
        return m ? [{ namespace, key, kind: m.kind, version: m.version, document: m.value }] : [];
      }),
    )
    .filter((g) => g.length > 1);
  return { groups, members };
}
