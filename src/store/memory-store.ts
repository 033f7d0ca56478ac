import type pg from 'pg';
import pgvector from 'pgvector';
import type { Logger } from '../log/logger.js';
import { applyChangeSet } from './apply.js';
import { withTransaction } from './pool.js';
import { tables, type Tables } from './sql.js';
import type { ApplyResult, ChangeSet, MemoryItem, Namespace, ScoredMemory } from './types.js';

const COLUMNS = 'm.namespace, m.key, m.kind, m.value, m.version, m.created_at, m.updated_at, m.expires_at';

/**
 * Memories in Postgres + pgvector. Methods take already-computed vectors: embedding happens
 * before a connection is borrowed, so no pooled connection waits on a model (invariant 8).
 */
export class MemoryStore {
  readonly t: Tables;

  constructor(
    readonly pool: pg.Pool,
    readonly schema: string,
    private readonly log: Logger,
  ) {
    this.t = tables(schema);
  }

  /**
   * Exact nearest neighbours within one namespace (recall 1.0: no ANN index between the filter
   * and the ranking). Items with several embedded fields rank by their best field.
   */
  async search(namespace: Namespace, vector: number[], limit: number, offset = 0): Promise<ScoredMemory[]> {
    const res = await this.pool.query(
      `select ${COLUMNS}, d.distance
         from (select v.key, min(v.embedding <=> $2::vector) as distance
                 from ${this.t.vectors} v where v.namespace = $1 group by v.key) d
         join ${this.t.memories} m on m.namespace = $1 and m.key = d.key
        where m.expires_at is null or m.expires_at > now()
        order by d.distance, m.key
        limit $3 offset $4`,
      [namespace, pgvector.toSql(vector), limit, offset],
    );
    return res.rows.map((r) => ({ ...toItem(r), score: 1 - Number(r.distance) }));
  }

  async get(namespace: Namespace, key: string): Promise<MemoryItem | null> {
    const res = await this.pool.query(
      `select ${COLUMNS} from ${this.t.memories} m where m.namespace = $1 and m.key = $2 and (m.expires_at is null or m.expires_at > now())`,
      [namespace, key],
    );
    return res.rows[0] ? toItem(res.rows[0]) : null;
  }

  /** The versions a reflection compares at commit time (0 for a namespace never written). */
  async namespaceVersions(namespaces: Namespace[]): Promise<Map<string, number>> {
    const versions = new Map<string, number>();
    for (const ns of namespaces) {
      const row = await this.pool.query(`select version from ${this.t.namespaces} where namespace = $1`, [ns]);
      versions.set(JSON.stringify(ns), row.rows[0] ? Number(row.rows[0].version) : 0);
    }
    return versions;
  }

  async getCursor(threadId: string): Promise<string | null> {
    const res = await this.pool.query(`select cursor from ${this.t.cursors} where thread_id = $1`, [threadId]);
    return (res.rows[0]?.cursor as string | undefined) || null;
  }

  /** One transaction: namespace locks, version checks, writes, history, cursor. */
  async apply(change: ChangeSet): Promise<ApplyResult> {
    return applyChangeSet(this.pool, this.t, change);
  }

  /** Deletes expired memories, with an `expire` history row each; returns how many. */
  async sweepExpired(actor: string, batch = 1_000): Promise<number> {
    return withTransaction(this.pool, async (client) => {
      const res = await client.query(
        `with gone as (
           delete from ${this.t.memories} where (namespace, key) in (
             select namespace, key from ${this.t.memories} where expires_at <= now() limit $1 for update skip locked)
           returning namespace, key, kind, value, version),
         hist as (
           insert into ${this.t.history} (namespace, key, kind, op, version, before, after, actor)
           select namespace, key, kind, 'expire', version, value, null, $2 from gone)
         update ${this.t.namespaces} n set version = n.version + 1, updated_at = now()
           where n.namespace in (select distinct namespace from gone)
         returning (select count(*) from gone) as swept`,
        [batch, actor],
      );
      const swept = Number(res.rows[0]?.swept ?? 0);
      if (swept) this.log.info({ swept }, 'expired memories swept');
      return swept;
    });
  }

  /** The change log of one memory, oldest first. */
  async history(namespace: Namespace, key: string) {
    const res = await this.pool.query(
      `select op, version, before, after, actor, thread_id, created_at from ${this.t.history} where namespace = $1 and key = $2 order by id`,
      [namespace, key],
    );
    return res.rows.map((r) => ({
      op: r.op as 'insert' | 'update' | 'delete' | 'expire',
      version: Number(r.version),
      before: r.before as Record<string, unknown> | null,
      after: r.after as Record<string, unknown> | null,
      actor: r.actor as string,
      threadId: r.thread_id as string | null,
      at: r.created_at as Date,
    }));
  }
}

function toItem(r: Record<string, unknown>): MemoryItem {
  return {
    namespace: r.namespace as Namespace,
    key: r.key as string,
    kind: r.kind as string,
    value: r.value as Record<string, unknown>,
    version: Number(r.version),
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
    expiresAt: (r.expires_at as Date | null) ?? null,
  };
}
