/**
 * The MCP sessions one API process keeps, bounded per tenant and in all. A session's server and
 * transport hold about 100 KB of heap (150 KB of RSS): measured by opening 300 and 600 sessions
 * against a running API with `node --expose-gc`, and dividing the growth of `heapUsed` (and
 * `rss`) after forced collections by the count; the default kinds and a two-kind file gave the
 * same figure. 1,000 sessions are thus about 100 MB.
 *
 * Past a tenant's cap its own least recently used session is closed; past the total, that of the
 * tenant holding the most (its least recently used), so a tenant never loses a session to
 * another while it holds no more than any other does. A session idle for `idleMs` is closed when
 * the next one opens. An MCP client answered 404 for a closed session starts a new one.
 */
export interface SessionLimits {
  /** Sessions one tenant (all of its keys) may hold; without API keys every session is one tenant's. */
  perTenant: number;
  total: number;
  idleMs: number;
}

interface Entry<T> {
  value: T;
  tenant: string | null;
  seen: number;
}

export class McpSessions<T> {
  /** Every session, least recently used first (Map keeps insertion order; a use re-inserts). */
  private readonly all = new Map<string, Entry<T>>();
  /** The same sessions by tenant, each least recently used first. */
  private readonly byTenant = new Map<string | null, Map<string, Entry<T>>>();

  constructor(
    private readonly limits: SessionLimits,
    /** Called with each session closed for room or idleness (not for `delete`). */
    private readonly evicted: (value: T) => void,
  ) {}

  get size(): number {
    return this.all.size;
  }

  /** The session `id` if `tenant` opened it, marked as used now; null otherwise. */
  use(id: string, tenant: string | null, now = Date.now()): T | null {
    const entry = this.all.get(id);
    if (!entry || entry.tenant !== tenant) return null;
    entry.seen = now;
    this.remove(id);
    this.insert(id, entry);
    return entry.value;
  }

  /** Adds a session, closing what it must first: the idle, then one over the tenant's cap or the total. */
  add(id: string, tenant: string | null, value: T, now = Date.now()): void {
    for (const [old, entry] of this.all) {
      if (now - entry.seen <= this.limits.idleMs) break;
      this.evict(old);
    }
    while ((this.byTenant.get(tenant)?.size ?? 0) >= this.limits.perTenant) this.evict(this.oldestOf(tenant));
    while (this.all.size >= this.limits.total) this.evict(this.oldestOf(this.largestTenant(tenant)));
    this.insert(id, { value, tenant, seen: now });
  }

  /** Forgets a session that ended (its client's DELETE); nothing is called. */
  delete(id: string): T | undefined {
    return this.remove(id)?.value;
  }

  /** Every session's id. */
  ids(): string[] {
    return [...this.all.keys()];
  }

  private insert(id: string, entry: Entry<T>): void {
    this.all.set(id, entry);
    let group = this.byTenant.get(entry.tenant);
    if (!group) {
      group = new Map<string, Entry<T>>();
      this.byTenant.set(entry.tenant, group);
    }
    group.set(id, entry);
  }

  private remove(id: string): Entry<T> | undefined {
    const entry = this.all.get(id);
    if (!entry) return undefined;
    this.all.delete(id);
    const group = this.byTenant.get(entry.tenant);
    group?.delete(id);
    if (group?.size === 0) this.byTenant.delete(entry.tenant);
    return entry;
  }

  private evict(id: string): void {
    const entry = this.remove(id);
    if (entry) this.evicted(entry.value);
  }

  private oldestOf(tenant: string | null): string {
    const [id] = this.byTenant.get(tenant)?.keys() ?? [];
    if (id === undefined) throw new Error(`no MCP session of tenant ${String(tenant)} to close`);
    return id;
  }

  /**
   * The tenant holding the most sessions. In a tie the opening tenant pays for its own session:
   * the first found of those tied could be another, which held no more than the opener.
   */
  private largestTenant(opener: string | null): string | null {
    const own = this.byTenant.get(opener)?.size;
    let largest: { tenant: string | null; size: number } | null = own ? { tenant: opener, size: own } : null;
    for (const [tenant, group] of this.byTenant)
      if (!largest || group.size > largest.size) largest = { tenant, size: group.size };
    if (!largest) throw new Error('no MCP session to close');
    return largest.tenant;
  }
}
