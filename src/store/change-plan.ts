import type { ChangeSet, Write, WriteResult } from './change-set.js';
import type { MemoryItem, Namespace } from './types.js';

/**
 * The pure half of the change-set writer (rules in change-set.ts): from the change and what the
 * transaction found under its locks, either the conflicts or every row to write. No I/O here, so
 * the rules can be read (and tested) apart from the SQL that carries them out.
 */

/** The namespaces a change locked, in lock order, with their versions when it compares any. */
export interface Locked {
  namespaces: Namespace[];
  versions?: number[];
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
  /** The id of the key's last history row, read for a revert's writes only (null: none or not read). */
  lastChange?: number | null;
  /** For a put that `restores` a history row: whether that row still holds a document. */
  sourceKept?: boolean | null;
}

/**
 * A version the change relied on that has moved. `key` is absent for a namespace's version.
 * `reason` tells a revert's own conflicts: `changed`, the key changed since the revert read it
 * though its live version may read the same (a later create-then-delete, an expiry); `gone`, the
 * document it puts back was taken by an erase or an expiry meanwhile.
 */
export interface Conflict {
  namespace: Namespace;
  key?: string;
  expected: number;
  actual: number;
  reason?: 'changed' | 'gone';
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
  /** ISO time the memory stopped holding (a revert to an invalidation); null: it holds. */
  invalidAt: string | null;
  /** Who invalidated it: the put's actor, when `invalidAt` is set. */
  invalidatedBy: string | null;
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
  const conflicts = findConflicts(change, locked, current, index);
  if (conflicts.length) return { conflicts };

  const nsi = change.writes.map((w) => index(w.namespace));
  const acc: Planned = {
    puts: [],
    deletes: [],
    invalidations: [],
    history: [],
    delta: new Map(),
    counts: { inserted: 0, updated: 0, deleted: 0, invalidated: 0, expired: 0 },
  };
  const outcome = change.writes.map((w, i) => {
    const at: At = { i, nsi: nsi[i] as number, c: current[i] as CurrentRow };
    const actor = (w.op !== 'expire' && w.actor) || change.actor;
    // An expired row is gone whatever the write does next: its expiry is history first. Its
    // documents go with it, this row's and the key's earlier ones (write-plan-sql.ts scrubs them):
    // a TTL bounds what engram keeps, not only what reads show.
    if (at.c.version !== null && at.c.expired) {
      acc.history.push({
        ...rowOf(at, w.key, actor),
        op: 'expire',
        version: at.c.version,
        before: null,
        after: null,
      });
      acc.counts.expired++;
    }
    if (w.op === 'invalidate') return planInvalidate(acc, at, w, actor);
    if (w.op === 'expire' || w.op === 'delete') return planRemoval(acc, at, w, actor);
    planPut(acc, at, w, actor, change.defaultKind);
    return null; // a put's result needs its row's timestamps
  });

  const changed = [...new Set(acc.history.map((h) => h.nsi))];
  return {
    namespaces: locked.namespaces,
    nsi,
    puts: acc.puts,
    deletes: acc.deletes,
    invalidations: acc.invalidations,
    history: acc.history,
    bumps: changed.map((n) => ({ nsi: n, delta: acc.delta.get(n) ?? 0 })),
    counts: acc.counts,
    results: (stamps) => resultsOf(change.writes, acc.puts, outcome, stamps),
  };
}

/** What planning gathers, write by write: the rows, each namespace's item delta, the counts. */
type Planned = Pick<Plan, 'puts' | 'deletes' | 'invalidations' | 'history' | 'counts'> & {
  delta: Map<number, number>;
};
/** One write's place: its index, its namespace's lock index, its row as found. */
interface At {
  i: number;
  nsi: number;
  c: CurrentRow;
}
type WriteOf<O extends Write['op']> = Extract<Write, { op: O }>;

/** A history row's common fields, with the row's kind as found. */
const rowOf = (at: At, key: string, actor: string) => ({ nsi: at.nsi, key, actor, kind: at.c.kind as string });

/** Invalidation ends a live item's validity: a new version, the value kept, history saying so. */
function planInvalidate(acc: Planned, at: At, w: WriteOf<'invalidate'>, actor: string): WriteResult {
  const { c } = at;
  // Gone, or already no longer holding: nothing to say.
  if (c.version === null || c.expired || c.invalidated) return { op: 'invalidate', invalidated: false };
  const version = c.version + 1;
  acc.invalidations.push({ i: at.i, nsi: at.nsi, key: w.key, version, at: w.at ?? null, actor });
  acc.history.push({ ...rowOf(at, w.key, actor), op: 'invalidate', version, before: c.value, after: c.value });
  acc.counts.invalidated++;
  return { op: 'invalidate', invalidated: true };
}

/**
 * A delete removes any row, with a history row only for a live one (an expired one's expiry was
 * recorded already); an expire removes only a row past its expiry.
 */
function planRemoval(acc: Planned, at: At, w: WriteOf<'delete' | 'expire'>, actor: string): WriteResult {
  const { c } = at;
  const existed = c.version !== null;
  if (!existed || (w.op === 'expire' && !c.expired))
    return w.op === 'delete' ? { op: 'delete', deleted: false } : { op: 'expire', expired: false };
  acc.deletes.push({ i: at.i, nsi: at.nsi, key: w.key });
  acc.delta.set(at.nsi, (acc.delta.get(at.nsi) ?? 0) - 1);
  if (w.op === 'expire') return { op: 'expire', expired: true };
  const visible = !c.expired;
  if (visible) {
    acc.history.push({
      ...rowOf(at, w.key, actor),
      op: 'delete',
      version: c.version as number,
      before: c.value,
      after: null,
    });
    acc.counts.deleted++;
  }
  return { op: 'delete', deleted: visible };
}

/**
 * A put takes the next version: the row's, or past the key's last history version when there is
 * no row, so that versions never repeat. An expired row is replaced (revived), never updated.
 */
function planPut(acc: Planned, at: At, w: WriteOf<'put'>, actor: string, defaultKind: string | undefined): void {
  const { c } = at;
  const existed = c.version !== null;
  const visible = existed && !c.expired;
  const version = (existed ? (c.version as number) : (c.lastVersion ?? 0)) + 1;
  const kind = w.kind ?? (visible ? (c.kind as string) : (w.defaultKind ?? defaultKind));
  if (!kind)
    throw new Error(`a put of ${JSON.stringify([w.namespace, w.key])} names no kind and the change no default`);
  acc.puts.push({
    i: at.i,
    nsi: at.nsi,
    key: w.key,
    kind,
    value: w.value,
    version,
    existed,
    revived: existed && c.expired,
    keepTtl: w.ttl === 'keep' && visible,
    ttlMs: w.ttl === 'keep' ? null : w.ttl,
    validFrom: w.validFrom ?? null,
    invalidAt: w.invalidAt ?? null,
    invalidatedBy: w.invalidAt === undefined ? null : actor,
  });
  if (!existed) acc.delta.set(at.nsi, (acc.delta.get(at.nsi) ?? 0) + 1);
  acc.history.push({
    ...rowOf(at, w.key, actor),
    kind,
    op: visible ? 'update' : 'insert',
    version,
    before: visible ? c.value : null,
    after: w.value,
  });
  if (visible) acc.counts.updated++;
  else acc.counts.inserted++;
}

/** The results in write order: puts' items from their rows' timestamps, the rest as planned. */
function resultsOf(
  writes: Write[],
  puts: PlannedPut[],
  outcome: (WriteResult | null)[],
  stamps: Map<number, Stamp>,
): WriteResult[] {
  const byWrite = new Map(puts.map((p) => [p.i, p]));
  return outcome.map((o, i) => {
    if (o) return o;
    const p = byWrite.get(i) as PlannedPut;
    const s = stamps.get(i);
    const w = writes[i] as Write;
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
}

/**
 * A revert's own checks: the document it puts back must still be kept (an erase deletes the row,
 * an expiry clears it, and an expired item about to be recorded as such counts as cleared), and
 * the key's last history row must be the one it read.
 */
function revertConflictOf(w: Write, c: CurrentRow): Conflict['reason'] | null {
  if (w.op === 'put' && w.restores !== undefined && (c.sourceKept !== true || c.expired)) return 'gone';
  if (
    (w.op === 'put' || w.op === 'delete') &&
    w.ifLastChange !== undefined &&
    w.ifLastChange !== (c.lastChange ?? null)
  )
    return 'changed';
  return null;
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
    if (r.version === null) continue;
    const actual = locked.versions?.[index(r.namespace) - 1];
    if (actual === undefined) throw new Error('namespace versions were not read for a change that compares them');
    if (r.version !== actual) conflicts.push({ namespace: r.namespace, expected: r.version, actual });
  }
  change.writes.forEach((w, i) => {
    if (w.op === 'expire') return;
    const c = current[i] as CurrentRow;
    const actual = liveVersion(c);
    if (w.ifVersion !== undefined && actual !== w.ifVersion) {
      conflicts.push({ namespace: w.namespace, key: w.key, expected: w.ifVersion, actual });
      return;
    }
    const revertConflict = revertConflictOf(w, c);
    if (revertConflict)
      conflicts.push({
        namespace: w.namespace,
        key: w.key,
        expected: w.ifVersion ?? actual,
        actual,
        reason: revertConflict,
      });
  });
  (change.guards ?? []).forEach((g, j) => {
    const actual = liveVersion(current[change.writes.length + j] as CurrentRow);
    if (actual !== g.version) conflicts.push({ namespace: g.namespace, key: g.key, expected: g.version, actual });
  });
  return conflicts;
}
