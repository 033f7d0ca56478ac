import type { Ttl, Write } from '../store/change-set.js';
import type { MergeMember } from '../store/merge-members.js';
import type { ExistingMemory, ManagerOp } from './tool-calls.js';

/**
 * A merge's writes as committed, and the guards they rely on. Each write also compares the
 * memory's last history row: an erase removes a namespace's history, so a key put again after
 * it starts over at version 1, and a version alone would let the merge write the erased text
 * over the new memory. What a merge folds together is kept as long as the longest-lived of it
 * (a TTL bounds how long a fact is kept) and holds from the earliest (what `asOf` finds): a
 * merge changes how a fact is kept, and must not narrow either.
 */
export function mergeChange(groups: ExistingMemory[][], members: Map<string, MergeMember>, writes: Write[]) {
  const groupOf = new Map(groups.flatMap((g) => g.map((m) => [m.key, g] as const)));
  const deleted = new Set(writes.flatMap((w) => (w.op === 'delete' ? [w.key] : [])));
  return {
    writes: writes.map((w): Write => {
      const member = members.get(w.key);
      if (!member || (w.op !== 'put' && w.op !== 'delete')) return w;
      const checked = { ...w, ifLastChange: member.lastChange };
      if (checked.op !== 'put') return checked;
      const absorbed = (groupOf.get(w.key) ?? []).flatMap((m) => {
        const took = members.get(m.key);
        return took && deleted.has(m.key) ? [took] : [];
      });
      const earliest = Math.min(...absorbed.map((m) => m.validFromMs));
      return {
        ...checked,
        ttl: lifetime(checked.ttl, member, absorbed),
        ...(earliest < member.validFromMs ? { validFrom: new Date(earliest).toISOString() } : {}),
      };
    }),
    guards: keptOf(groups, writes),
  };
}

/**
 * A group the answer only deletes from (repeats of a memory kept as it is) where a repeat
 * outlives every kept memory or held before all of them: the first kept memory is written too,
 * its document unchanged, so that it takes over the repeat's life and validity (`mergeChange`).
 * Dropped, the fact would go when the shorter-lived one expires, or no longer be found at the
 * times only the repeat held.
 */
export function widenKept(groups: ExistingMemory[][], ops: ManagerOp[], members: Map<string, MergeMember>) {
  const deleted = new Set(ops.flatMap((op) => (op.op === 'delete' ? [op.target.key] : [])));
  const updated = new Set(ops.flatMap((op) => (op.op === 'update' ? [op.target.key] : [])));
  const widened = groups.flatMap((group): ManagerOp[] => {
    const kept = group.filter((m) => !deleted.has(m.key));
    const repeats = group.flatMap((m) => (deleted.has(m.key) ? [members.get(m.key) as MergeMember] : []));
    const first = kept[0];
    if (!first || repeats.length === 0 || kept.some((m) => updated.has(m.key))) return [];
    const keptMembers = kept.map((m) => members.get(m.key) as MergeMember);
    const outlived = Math.max(...repeats.map(expiry)) > Math.max(...keptMembers.map(expiry));
    const predated =
      Math.min(...repeats.map((m) => m.validFromMs)) < Math.min(...keptMembers.map((m) => m.validFromMs));
    return outlived || predated ? [{ op: 'update', target: first, document: first.document }] : [];
  });
  return [...ops, ...widened];
}

/** When a memory expires, in ms; never: infinity. */
const expiry = (m: MergeMember | undefined) => m?.expiresAtMs ?? Number.POSITIVE_INFINITY;

/**
 * The TTL of a rewrite that takes in `absorbed`: none if it or any of them never expires, else
 * at least as long as the one of them that expires last (its duration from now, which reaches
 * past its expiry, as a put renews it). Left as decided when the rewritten memory already lives
 * longest. The rewritten memory counts too: a write the merge added to widen a kept memory's
 * validity (widenKept) took its kind's TTL, and made a memory that never expired expire.
 */
function lifetime(ttl: Ttl, rewritten: MergeMember, absorbed: MergeMember[]): Ttl {
  if (absorbed.length === 0 || ttl === null) return ttl;
  const all = [rewritten, ...absorbed];
  const longestAt = Math.max(...all.map(expiry));
  if (longestAt === Number.POSITIVE_INFINITY) return null;
  if (ttl === 'keep' && expiry(rewritten) >= longestAt) return 'keep';
  const longest = all.find((m) => expiry(m) === longestAt) as MergeMember;
  // Rows older than migration 003 have no recorded duration: what is left of their life.
  const duration = longest.ttlMs ?? Math.max(1, Math.ceil(longestAt - Date.now()));
  return ttl === 'keep' ? duration : Math.max(ttl, duration);
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
