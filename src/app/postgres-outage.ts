import type { Worker } from 'bullmq';
import pg from 'pg';
import { postgresUnavailable } from '../dependency-errors.js';
import type { Logger } from '../observability/logger.js';

/**
 * A failure that says Postgres could not be had: no connection (refused, not resolved, timed
 * out, a full pool), or a server shutting down, starting up or recovering. Not a connection lost
 * in the middle of a statement (reset, "terminated unexpectedly"): that is also what a job whose
 * statement crashes the server sees, and holding it back for ever would crash the server again
 * at every run, where spending its attempts parks it.
 */
const LOST_MID_STATEMENT = new Set(['Connection terminated unexpectedly']);
const RESET = new Set(['ECONNRESET', 'EPIPE']);

function notReached(err: Error): boolean {
  if (err instanceof pg.DatabaseError) return postgresUnavailable(err);
  if (LOST_MID_STATEMENT.has(err.message) || RESET.has((err as NodeJS.ErrnoException).code ?? '')) return false;
  return postgresUnavailable(err);
}

/** The error or one of its causes (a reflection may wrap the driver's error once or twice). */
function causes(err: unknown): Error[] {
  const chain: Error[] = [];
  for (let e = err; e instanceof Error && chain.length < 4; e = e.cause) chain.push(e);
  return chain;
}

/**
 * Holds one process's reflections while Postgres is out of reach. A reflection that fails for
 * want of Postgres spends an attempt, and the attempts with their backoff last about a minute
 * (docs/operations.md): a longer outage parked every thread due meanwhile, which only an
 * operator's retry or the user's next turn would reflect. When such a failure is confirmed by a
 * ping that fails too (Postgres down for everyone, not this job's trouble), the process hands the
 * job back without spending an attempt, stops taking reflections, and pings until Postgres
 * answers; then it takes them again. Other processes find the outage by their own jobs.
 */
export class PostgresOutage {
  private workers: Worker[] = [];
  private since: number | null = null;
  private handedBack = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ping: () => Promise<unknown>,
    private readonly log: Logger,
    private readonly pollMs = 2_000,
  ) {}

  /** The workers held while Postgres is away (one per shard). */
  attach(workers: Worker[]): void {
    this.workers = workers;
  }

  /**
   * Whether the job that failed with `err` is to be handed back untouched: Postgres could not
   * be had, and is not there for a ping either. Starts the hold when it is the first such.
   */
  async holds(err: unknown): Promise<boolean> {
    if (!causes(err).some(notReached)) return false;
    if (this.since === null && (await this.reachable())) return false;
    this.handedBack++;
    if (this.since === null) this.begin(err);
    return true;
  }

  /** Stops pinging (the process is shutting down; its workers close on their own). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async reachable(): Promise<boolean> {
    try {
      await this.ping();
      return true;
    } catch {
      return false;
    }
  }

  private begin(err: unknown): void {
    this.since = Date.now();
    this.log.warn(
      { err },
      'postgres unreachable: this process takes no reflection until it answers; jobs are handed back without spending an attempt',
    );
    // Not waiting for the active ones: each fails on its own and is handed back.
    for (const w of this.workers) void w.pause(true);
    this.poll();
  }

  private poll(): void {
    this.timer = setTimeout(() => {
      void this.reachable().then((ok) => {
        if (this.timer === null) return;
        if (!ok) return this.poll();
        this.log.info(
          { downMs: Date.now() - (this.since ?? Date.now()), handedBack: this.handedBack },
          'postgres reachable again: reflections resume',
        );
        this.since = null;
        this.handedBack = 0;
        this.timer = null;
        for (const w of this.workers) void w.resume();
      });
    }, this.pollMs);
    this.timer.unref();
  }
}
