import type { ChangeSet, WriteResult } from './change-set.js';
import type { MemoryItem, Namespace } from './types.js';

/**
 * The pure half of the change-set writer (rules in change-set.ts): from the change and what the
 * transaction found under its locks, either the conflicts or every row to write. No I/O here, so
 * the rules can be read (and tested) apart from the SQL that carries them out.
 */

/** The namespaces a change locked, in lock order, with their versions. */
export interface Locked {
  namespaces: Namespace[];
  versions: number[];
}

/** An item as the transaction found it, for each write and then each guard, in order. */
export interface CurrentRow {
  /** null: no row. */
  version: number | null;
  kind: string | null;
  value: Record<string, unknown> | null;
  expired: boolean;
  invalidated: boolean;
  /** The key's last history version, when there is no row. */
  lastVersion: number | null;
}

/** A version the change relied on that has moved. `key` is absent for a namespace's version. */
export interface Conflict {
  namespace: Namespace;
  key?: string;
  expected: number;
  actual: number;
}

export interface HistoryRow {
  nsi: number;
  key: string;
  kind: string;
  op: 'insert' | 'update' | 'delete' | 'expire' | 'invalidate';
  version: number;
  before: unknown;
  after: unknown;
  actor: string;
}

/** A put as rows: `existed` updates the row in place (replacing an expired one revives it). */
export interface PlannedPut {
  i: number;
  nsi: number;
  key: string;
  kind: string;
  value: Record<string, unknown>;
  version: number;
  existed: boolean;
  /** The row was expired: its creation time restarts. */
  revived: boolean;
  /** Keep the row's expiry and duration (a 'keep' put over a live item). */
  keepTtl: boolean;
  ttlMs: number | null;
  /** ISO time; null: now for a new (or revived) row, the row's own for an existing one. */
  validFrom: string | null;
}

/** An invalidation as a row update: the version it takes, from when, by whom. */
export interface PlannedInvalidation {
  i: number;
  nsi: number;
  key: string;
  version: number;
  at: string | null;
  actor: string;
}

export interface Plan {
  /** The locked namespaces, in lock order: what `nsi` points into. */
  namespaces: Namespace[];
  /** 1-based index into `Locked.namespaces` of each write. */
  nsi: number[];
  puts: PlannedPut[];
  /** Rows removed: deletes of existing items, expiries of expired ones. */
  deletes: { i: number; nsi: number; key: string }[];
  invalidations: PlannedInvalidation[];
  history: HistoryRow[];
  bumps: { nsi: number; delta: number }[];
  counts: { inserted: number; updated: number; deleted: number; invalidated: number; expired: number };
  /** The results in write order, once the rows' timestamps are known (by write index). */
  results(stamps: Map<number, Stamp>): WriteResult[];
}

/** What the database sets on a put row: its times. */
export type Stamp = Pick<MemoryItem, 'createdAt' | 'updatedAt' | 'expiresAt' | 'validFrom' | 'invalidAt'>;

const id = (ns: Namespace) => JSON.stringify(ns);
const liveVersion = (c: CurrentRow) => (c.version !== null && !c.expired ? c.version : 0);

/** Set-based SQL writes a row once per statement; callers refuse such input before this. */
export function assertWritesOnce(change: ChangeSet): void {
  const seen = new Set<string>();
  for (const w of change.writes) {
    const k = JSON.stringify([w.namespace, w.key]);
    if (seen.has(k)) throw new Error(`a change set may write ${k} only once`);
    seen.add(k);
  }
}

export function planChange(change: ChangeSet, locked: Locked, current: CurrentRow[]): Plan | { conflicts: Conflict[] } {
  const nsIndex = new Map(locked.namespaces.map((ns, i) => [id(ns), i + 1]));
  const index = (ns: Namespace) => nsIndex.get(id(ns)) as number;
  const { writes } = change;
  const conflicts = findConflicts(change, locked, current, index);
  if (conflicts.length) return { conflicts };

  const nsi = writes.map((w) => index(w.namespace));
  const puts: PlannedPut[] = [];
  const deletes: Plan['deletes'] = [];
  const invalidations: PlannedInvalidation[] = [];
  const history: HistoryRow[] = [];
  const delta = new Map<number, number>();
  const counts = { inserted: 0, updated: 0, deleted: 0, invalidated: 0, expired: 0 };
  const outcome: (WriteResult | null)[] = writes.map((w, i) => {
    const c = current[i] as CurrentRow;
    const n = nsi[i] as number;
    const actor = (w.op !== 'expire' && w.actor) || change.actor;
    const existed = c.version !== null;
    const visible = existed && !c.expired;
    const row = { nsi: n, key: w.key, actor };
    if (existed && c.expired) {
      history.push({
        ...row,
        kind: c.kind as string,
        op: 'expire',
        version: c.version as number,
        before: c.value,
        after: null,
      });
      counts.expired++;
    }
    if (w.op === 'invalidate') {
      // Gone, or already no longer holding: nothing to say.
      if (!visible || c.invalidated) return { op: 'invalidate', invalidated: false };
      const version = (c.version as number) + 1;
      invalidations.push({ i, nsi: n, key: w.key, version, at: w.at ?? null, actor });
      history.push({ ...row, kind: c.kind as string, op: 'invalidate', version, before: c.value, after: c.value });
      counts.invalidated++;
      return { op: 'invalidate', invalidated: true };
    }
    if (w.op === 'expire' || w.op === 'delete') {
      if (!existed || (w.op === 'expire' && !c.expired))
        return w.op === 'delete' ? { op: 'delete', deleted: false } : { op: 'expire', expired: false };
      deletes.push({ i, nsi: n, key: w.key });
      delta.set(n, (delta.get(n) ?? 0) - 1);
      if (w.op === 'expire') return { op: 'expire', expired: true };
      if (visible) {
        history.push({
          ...row,
          kind: c.kind as string,
          op: 'delete',
          version: c.version as number,
          before: c.value,
          after: null,
        });
        counts.deleted++;
      }
      return { op: 'delete', deleted: visible };
    }
    const version = (existed ? (c.version as number) : (c.lastVersion ?? 0)) + 1;
    const kind = w.kind ?? (visible ? (c.kind as string) : change.defaultKind);
    if (!kind)
      throw new Error(`a put of ${JSON.stringify([w.namespace, w.key])} names no kind and the change no default`);
    const keepTtl = w.ttl === 'keep' && visible;
    const ttlMs = w.ttl === 'keep' ? null : w.ttl;
    puts.push({
      i,
      nsi: n,
      key: w.key,
      kind,
      value: w.value,
      version,
      existed,
      revived: existed && c.expired,
      keepTtl,
      ttlMs,
      validFrom: w.validFrom ?? null,
    });
    if (!existed) delta.set(n, (delta.get(n) ?? 0) + 1);
    history.push({
      ...row,
      kind,
      op: visible ? 'update' : 'insert',
      version,
      before: visible ? c.value : null,
      after: w.value,
    });
    if (visible) counts.updated++;
    else counts.inserted++;
    return null; // a put's result needs its row's timestamps
  });

  const changed = [...new Set(history.map((h) => h.nsi))];
  return {
    namespaces: locked.namespaces,
    nsi,
    puts,
    deletes,
    invalidations,
    history,
    bumps: changed.map((n) => ({ nsi: n, delta: delta.get(n) ?? 0 })),
    counts,
    results(stamps) {
      const byWrite = new Map(puts.map((p) => [p.i, p]));
      return outcome.map((o, i) => {
        if (o) return o;
        const p = byWrite.get(i) as PlannedPut;
        const s = stamps.get(i);
        const w = writes[i] as { namespace: Namespace };
        if (!s) throw new Error(`put of ${JSON.stringify([w.namespace, p.key])} returned no row`);
        const item: MemoryItem = {
          namespace: w.namespace,
          key: p.key,
          kind: p.kind,
          value: p.value,
          version: p.version,
          ...s,
        };
        return { op: 'put', item, inserted: !(p.existed && !p.revived) };
      });
    },
  };
}

/** Every namespace version, guard and `ifVersion` that moved. */
function findConflicts(
  change: ChangeSet,
  locked: Locked,
  current: CurrentRow[],
  index: (ns: Namespace) => number,
): Conflict[] {
  const conflicts: Conflict[] = [];
  for (const r of change.reads ?? []) {
    const actual = locked.versions[index(r.namespace) - 1] as number;
    if (r.version !== null && r.version !== actual)
      conflicts.push({ namespace: r.namespace, expected: r.version, actual });
  }
  change.writes.forEach((w, i) => {
    if (w.op === 'expire' || w.ifVersion === undefined) return;
    const actual = liveVersion(current[i] as CurrentRow);
    if (actual !== w.ifVersion) conflicts.push({ namespace: w.namespace, key: w.key, expected: w.ifVersion, actual });
  });
  (change.guards ?? []).forEach((g, j) => {
    const actual = liveVersion(current[change.writes.length + j] as CurrentRow);
    if (actual !== g.version) conflicts.push({ namespace: g.namespace, key: g.key, expected: g.version, actual });
  });
  return conflicts;
}
