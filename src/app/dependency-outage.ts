import type { Worker } from 'bullmq';
import pg from 'pg';
import { postgresPoolBusy, postgresUnavailable } from '../dependency-errors.js';
import { modelRateLimited, modelUnreachable } from '../llm/probe.js';
import type { DependencyAway } from '../memory/consolidate.js';
import type { Logger } from '../observability/logger.js';

/** A dependency a reflection cannot do without, and how to tell it is away. */
export interface OutageProbe {
  name: 'postgres' | 'chat-model' | 'embedding-model';
  /** Whether a failure (or one of its causes) says this dependency could not be had. */
  matches(err: Error): boolean;
  /** Resolves when the dependency answers; rejects when it does not. */
  ping(): Promise<unknown>;
  /** What the hold's first line says is wrong (`<name> unreachable` when unset). */
  away?(err: unknown): string;
  /** What the line that ends the hold says (`<name> reachable again` when unset). */
  back?: string;
  /** Probed this many times less often than an outage (a real request, not a free one). */
  pollFactor?: number;
  /** What holds: the dependency out of reach (the default), or refusing every request (429). */
  reason?: 'unreachable' | 'rate-limited';
}

/** Told when a hold begins (`true`) and ends, for the `engram_reflections_held` gauge. */
export type HoldReport = (hold: { dependency: OutageProbe['name']; reason: string }, held: boolean) => void;

/** A probe per dependency and question: is it there (outage), does it take a request (429). */
export interface ReflectionProbeFns {
  postgres: () => Promise<unknown>;
  chat: () => Promise<unknown>;
  embedding: () => Promise<unknown>;
  chatRate: () => Promise<unknown>;
  embeddingRate: () => Promise<unknown>;
}

/**
 * Postgres could not be had: no connection (refused, not resolved, timed out, a full pool), or a
 * server shutting down, starting up or recovering. Not a connection lost in the middle of a
 * statement (reset, "terminated unexpectedly"): that is also what a job whose statement crashes
 * the server sees, and holding it back for ever would crash the server again at every run,
 * where spending its attempts parks it.
 */
export function postgresNotReached(err: Error): boolean {
  if (err instanceof pg.DatabaseError) return postgresUnavailable(err);
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (err.message === 'Connection terminated unexpectedly' || code === 'ECONNRESET' || code === 'EPIPE') return false;
  return postgresUnavailable(err);
}

/**
 * The probes of the dependencies of a reflection (and of a consolidation pass): Postgres by
 * `select 1`, the models by `GET /models` when out of reach, by their smallest request when they
 * answer 429.
 */
export function reflectionProbes(p: ReflectionProbeFns): OutageProbe[] {
  return [
    {
      name: 'postgres',
      matches: postgresNotReached,
      ping: p.postgres,
      // A pool whose connections all stayed busy is not a server away: said so, with its setting.
      away: (err) =>
        causes(err).some(postgresPoolBusy)
          ? 'postgres had no free connection in time (every one of DATABASE_POOL_MAX busy)'
          : 'postgres unreachable',
    },
    { name: 'chat-model', matches: (err) => modelUnreachable(err, 'chat-model'), ping: p.chat },
    { name: 'embedding-model', matches: (err) => modelUnreachable(err, 'embedding-model'), ping: p.embedding },
    rateLimit('chat-model', p.chatRate),
    rateLimit('embedding-model', p.embeddingRate),
  ];
}

/**
 * A provider's rate limit or quota on everyone (the smallest request refused too) is held like an
 * outage; one that refuses only this request (too large for a tokens-per-minute limit) is the
 * job's own failure and spends its attempt, or it would come back refused for ever.
 */
function rateLimit(name: 'chat-model' | 'embedding-model', ping: () => Promise<unknown>): OutageProbe {
  return {
    name,
    matches: (err) => modelRateLimited(err, name),
    ping,
    // A probe here spends a token or two: asked every 10 s with the default poll, not every 2 s.
    pollFactor: 5,
    reason: 'rate-limited',
    away: () => `${name} refuses requests for its rate limit or quota (429), a one-word request too`,
    back: `${name} takes requests again`,
  };
}

/**
 * The probe of the dependency `err` says could not be had. The outermost error a probe knows
 * names it: a model request's failure wraps the socket error under it, which Postgres' matcher
 * would take for its own.
 */
function probeOf(probes: OutageProbe[], err: unknown): OutageProbe | undefined {
  return causes(err)
    .map((e) => probes.find((p) => p.matches(e)))
    .find((p) => p !== undefined);
}

/**
 * Asks whether the failure `err` is a dependency's away for everyone (its probe fails too) rather
 * than this work's own: for work that has no worker to pause, a consolidation pass, which stops
 * instead of failing every namespace left against the same outage.
 */
export function awayOf(probes: OutageProbe[]): (err: unknown) => Promise<DependencyAway | null> {
  return async (err) => {
    const probe = probeOf(probes, err);
    if (!probe || (await answers(probe))) return null;
    return { ...holdOf(probe), message: awayMessage(probe, err) };
  };
}

/** The error and its causes (a reflection may wrap a driver's error once or twice). */
function causes(err: unknown): Error[] {
  const chain: Error[] = [];
  for (let e = err; e instanceof Error && chain.length < 4; e = e.cause) chain.push(e);
  return chain;
}

/** How often a hold that lasts says so again in the log. */
const REMIND_MS = 5 * 60_000;

interface Hold {
  probe: OutageProbe;
  since: number;
  remindedAt: number;
  handedBack: number;
}

/**
 * Holds one process's reflections while a dependency is out of reach, or a model's provider
 * refuses every request for a rate limit. A reflection that failed for want of Postgres or a
 * model endpoint spent an attempt, and the attempts with their backoff
 * last about a minute (docs/operations.md): a longer outage parked every thread due meanwhile,
 * which only an operator's retry or the user's next turn would reflect. When such a failure is
 * confirmed by a probe that fails too (the dependency is away for everyone, not this job's
 * trouble), the process hands the job back without spending an attempt, stops taking
 * reflections, and probes until the dependency answers; then it takes them again. Other
 * processes find the outage by their own jobs.
 */
export class DependencyOutage {
  private workers: Worker[] = [];
  private held: Hold | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly asking = new Map<OutageProbe, Promise<boolean>>();

  constructor(
    private readonly probes: OutageProbe[],
    private readonly log: Logger,
    private readonly pollMs = 2_000,
    private readonly report: HoldReport = () => undefined,
  ) {}

  /** The workers held while a dependency is away (one per shard). */
  attach(workers: Worker[]): void {
    this.workers = workers;
  }

  /**
   * Whether the job that failed with `err` is to be handed back untouched: a dependency could
   * not be had, and does not answer its probe either. Starts the hold when it is the first such.
   */
  async holds(err: unknown): Promise<boolean> {
    const probe = probeOf(this.probes, err);
    if (!probe) return false;
    if (this.held === null && (await this.ask(probe))) return false;
    if (this.held === null) this.begin(probe, err);
    (this.held as { handedBack: number }).handedBack++;
    return true;
  }

  /**
   * One probe at a time per dependency: the jobs that fail together (a process's whole
   * concurrency, when a provider starts refusing) share its answer instead of each sending one.
   */
  private ask(probe: OutageProbe): Promise<boolean> {
    let asking = this.asking.get(probe);
    if (!asking) {
      asking = answers(probe).finally(() => this.asking.delete(probe));
      this.asking.set(probe, asking);
    }
    return asking;
  }

  /** Stops probing (the process is shutting down; its workers close on their own). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * A line every REMIND_MS while a hold lasts: one at its start scrolls out of sight in an
   * outage of hours (an exhausted quota), and an operator reading the logs then should see why
   * nothing reflects.
   */
  private remind(held: Hold): void {
    const now = Date.now();
    if (now - held.remindedAt < REMIND_MS) return;
    held.remindedAt = now;
    this.log.warn(
      { dependency: held.probe.name, downMs: now - held.since, handedBack: held.handedBack },
      `${held.probe.name} still ${held.probe.reason === 'rate-limited' ? 'refusing requests (429)' : 'unreachable'}: this process still takes no reflection`,
    );
  }

  private begin(probe: OutageProbe, err: unknown): void {
    const now = Date.now();
    this.held = { probe, since: now, remindedAt: now, handedBack: 0 };
    this.report(holdOf(probe), true);
    this.log.warn(
      { err, dependency: probe.name },
      `${awayMessage(probe, err)}: this process takes no reflection until it answers; jobs are handed back without spending an attempt`,
    );
    // Not waiting for the active ones: each fails on its own and is handed back.
    for (const w of this.workers) void w.pause(true);
    this.poll();
  }

  private poll(): void {
    if (this.stopped) return;
    this.timer = setTimeout(
      () => {
        const held = this.held;
        if (!held) return;
        void answers(held.probe).then((ok) => {
          if (this.stopped) return;
          if (!ok) {
            this.remind(held);
            return this.poll();
          }
          this.log.info(
            { dependency: held.probe.name, downMs: Date.now() - held.since, handedBack: held.handedBack },
            `${held.probe.back ?? `${held.probe.name} reachable again`}: reflections resume`,
          );
          this.held = null;
          this.report(holdOf(held.probe), false);
          for (const w of this.workers) void w.resume();
        });
      },
      this.pollMs * (this.held?.probe.pollFactor ?? 1),
    );
    this.timer.unref();
  }
}

function holdOf(probe: OutageProbe) {
  return { dependency: probe.name, reason: probe.reason ?? 'unreachable' };
}

function awayMessage(probe: OutageProbe, err: unknown): string {
  return probe.away?.(err) ?? `${probe.name} unreachable`;
}

async function answers(probe: OutageProbe): Promise<boolean> {
  try {
    await probe.ping();
    return true;
  } catch {
    return false;
  }
}
