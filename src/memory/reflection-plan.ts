import type { BufferedTurn } from '../queue/schemas.js';
import type { NamespaceSnapshot, SnapshotRequest } from '../store/snapshot.js';
import type { Namespace } from '../store/types.js';
import { profileKey, type MemoryKind } from './kinds.js';
import { fillNamespace } from '../core/namespace-template.js';
import { threadTenant } from '../core/names.js';
import { PermanentError } from '../errors.js';
import type { ExistingMemory } from './tool-calls.js';

/** Pure steps of a reflection: which kinds, which namespaces, which queries, what the model saw. */

/** Kinds the turns feed: those named by the turns, or all when a turn names none. */
export function kindsFor(all: MemoryKind[], turns: BufferedTurn[]): MemoryKind[] {
  if (turns.some((t) => !t.kinds)) return all;
  const named = new Set(turns.flatMap((t) => t.kinds ?? []));
  return all.filter((k) => named.has(k.name));
}

/**
 * The pending turns up to the first one sent for other kinds than the first's (no `kinds`: all
 * of them): a reflection's batch, each of its turns feeding the same kinds.
 */
export function sameKinds<T extends { turn: BufferedTurn }>(pending: T[]): T[] {
  const of = (t: BufferedTurn) => (t.kinds ? JSON.stringify([...t.kinds].sort()) : '*');
  const first = pending[0] ? of(pending[0].turn) : '';
  const cut = pending.findIndex((e) => of(e.turn) !== first);
  return cut === -1 ? pending : pending.slice(0, cut);
}

export type NamespaceGroup = SnapshotRequest & { all: string[] };

/** The namespaces a reflection reads and writes, with the collection kinds and the profiles (kind and key) of each. */
export function groupByNamespace(kinds: MemoryKind[], context: Record<string, string>): NamespaceGroup[] {
  const groups = new Map<string, NamespaceGroup>();
  for (const kind of kinds) {
    const namespace = fillNamespace(kind.namespace, context, kind.name);
    const id = JSON.stringify(namespace);
    const group = groups.get(id) ?? { namespace, kinds: [], profiles: [], all: [] };
    if (kind.mode === 'profile') group.profiles.push({ key: profileKey(kind), kind: kind.name });
    else group.kinds.push(kind.name);
    group.all.push(kind.name);
    groups.set(id, group);
  }
  return [...groups.values()];
}

/**
 * A thread filed behind a tenant (`acme/t1`: API keys are on) reads and writes under that tenant
 * only, whatever this process' kinds say. The "{tenant}" check of the kinds runs at start only in
 * a process with API_KEYS (the API's); a reflection process started with other kinds (its own
 * ENGRAM_KINDS_FILE, or none) would file two tenants' users in one namespace, each reflection
 * shown and rewriting the other tenant's memories. Such a job fails for good, naming the kind.
 */
export function checkThreadTenant(threadId: string, groups: NamespaceGroup[]): void {
  const tenant = threadTenant(threadId);
  if (tenant === null) return;
  const outside = groups.find((g) => g.namespace[0] !== tenant);
  if (outside)
    throw new PermanentError(
      `thread ${threadId} belongs to tenant "${tenant}", but memory kind "${outside.all[0]}" fills ${JSON.stringify(outside.namespace)} from its context: with API keys every kind's namespace must start with "{tenant}" in every process`,
    );
}

/** The namespace each kind writes to. */
export function namespaceOf(groups: NamespaceGroup[]): (kind: string) => Namespace {
  return (kind) => (groups.find((g) => g.all.includes(kind)) as NamespaceGroup).namespace;
}

/**
 * Several recent turns, not only the last message (docs/prior-art.md: LangMem searched with the
 * last one only): distinct texts of the newest non-system turns, each cut to what an embedding needs.
 */
export function searchQueries(turns: Pick<BufferedTurn, 'role' | 'content'>[], max: number): string[] {
  const texts = turns.filter((t) => t.role !== 'system').map((t) => t.content.slice(0, 2_000));
  return [...new Set(texts)].slice(-max);
}

/** The memories of the snapshots as the manager takes them: profiles first. */
export function existingMemories(snapshots: NamespaceSnapshot[]): ExistingMemory[] {
  return snapshots.flatMap((s) =>
    [...s.profiles, ...s.memories].map((m) => ({
      namespace: m.namespace,
      key: m.key,
      kind: m.kind,
      version: m.version,
      document: m.value,
    })),
  );
}

/** What the model was shown, by key and version: equal signatures mean an identical prompt. */
export function snapshotSignature(snapshots: NamespaceSnapshot[]): string {
  return snapshots.map((s) => [...s.profiles, ...s.memories].map((m) => `${m.key}@${m.version}`).join(',')).join('|');
}
