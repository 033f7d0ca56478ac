import type { StoredMemory } from './backend.js';

/**
 * Ids a session has shown the model must stay few: past this many, the least recently shown is
 * forgotten (the model gets "unknown id; search again"). A conversation sees tens.
 */
export const MAX_SHORT_IDS = 500;

const keyOf = (m: Pick<StoredMemory, 'namespace' | 'key'>) => JSON.stringify([m.namespace, m.key]);

/**
 * A tool session's short ids (m1, m2...), as the reflection prompt shows memories: models copy a
 * short id reliably and a UUID key less so (docs/prior-art.md, mem0 #3931). Each id names one
 * memory, with the version and document the model was shown, which an update or delete then
 * compares (compare-and-set). Numbers never repeat within a session, so a forgotten id is never
 * reused for another memory. Memories reach the map only from the session's own searches and
 * writes, so an id can only name a memory of the session's namespaces.
 */
export class ShortIds {
  /** Least recently shown first (a Map keeps insertion order; a re-shown id moves to the end). */
  private readonly byId = new Map<string, StoredMemory>();
  private readonly byKey = new Map<string, string>();
  /**
   * Ids of memories this session saw deleted: kept, so that their history stays readable by
   * the id the model knows (MCP's memory_history), but no longer changeable through it.
   */
  private readonly gone = new Set<string>();
  private next = 1;

  /** The id of a memory (its existing one, else a new one), now holding what was shown. */
  add(memory: StoredMemory): string {
    const id = this.byKey.get(keyOf(memory)) ?? `m${this.next++}`;
    this.set(id, memory);
    return id;
  }

  /** `id` names `memory` from now on (a temporal kind's update moves a fact to a new key). */
  rebind(id: string, memory: StoredMemory): string {
    this.drop(id);
    this.set(id, memory);
    return id;
  }

  /** The memory an id names, if it still exists as far as this session knows. */
  get(id: string): StoredMemory | undefined {
    return this.gone.has(id) ? undefined : this.byId.get(id);
  }

  /** The memory an id names, deleted ones included: where its history is. */
  find(id: string): StoredMemory | undefined {
    return this.byId.get(id);
  }

  /** Whether the id names a memory this session saw deleted. */
  isGone(id: string): boolean {
    return this.gone.has(id);
  }

  /** The memory is deleted: the id still finds it (for its history), but `get` no longer does. */
  retire(id: string): void {
    if (this.byId.has(id)) this.gone.add(id);
  }

  drop(id: string): void {
    const memory = this.byId.get(id);
    if (!memory) return;
    this.byId.delete(id);
    this.byKey.delete(keyOf(memory));
    this.gone.delete(id);
  }

  /** The ids of existing memories, newest last, for an error message (the last 20). */
  list(): string {
    return [...this.byId.keys()]
      .filter((id) => !this.gone.has(id))
      .slice(-20)
      .join(', ');
  }

  private set(id: string, memory: StoredMemory): void {
    const old = this.byId.get(id);
    if (old) this.byKey.delete(keyOf(old));
    this.byId.delete(id);
    this.byId.set(id, memory);
    this.byKey.set(keyOf(memory), id);
    // Shown again (a revert brought it back): it exists again.
    this.gone.delete(id);
    if (this.byId.size > MAX_SHORT_IDS) this.drop(this.byId.keys().next().value as string);
  }
}
