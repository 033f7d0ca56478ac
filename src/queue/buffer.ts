import type { Result } from 'ioredis';
import type { RedisClient } from './connection.js';
import { ConflictError } from '../errors.js';
import { APPEND_TURNS, APPEND_TURNS_SHA, PARK, TRIM_TO_CURSOR } from './buffer-scripts.js';
import type { ReflectionPolicy } from '../core/names.js';
import { contextSchema, storedTurnSchema, type BufferedTurn, type ThreadContext } from './schemas.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    engramTrimToCursor(...args: (string | number)[]): Result<number, Context>;
    engramPostponeCeiling(...args: (string | number)[]): Result<number, Context>;
    engramPark(...args: (string | number)[]): Result<number, Context>;
  }
}

export interface BufferOptions {
  /** How long a message id is remembered for idempotent enqueue. */
  dedupeWindowMs: number;
  /** How long an idle thread's keys (context, recent turns) live once nothing is pending. */
  idleTtlMs: number;
}

/** Message ids are remembered for a day; an idle thread's context and last turns for a week. */
export const BUFFER_DEFAULTS: BufferOptions = { dedupeWindowMs: 24 * 3600_000, idleTtlMs: 7 * 24 * 3600_000 };

export interface BufferedEntry {
  /** Stream entry id: orders the thread's turns; the last reflected one is the cursor. */
  entryId: string;
  turn: BufferedTurn;
}

/** A turn to append: its JSON, and the client's message id (the idempotency key) if it sent one. */
export interface TurnToAppend {
  clientId: string | undefined;
  json: string;
}

export interface ThreadSnapshot {
  context: ThreadContext | null;
  /** Turns after the cursor, oldest first. */
  pending: BufferedEntry[];
  /** Already reflected turns still buffered just before the cursor, oldest first. */
  earlier: BufferedEntry[];
}

/**
 * The per-thread turn buffer in Redis: the only thing the hot path writes, and the source of
 * truth for turns until a committed reflection's cursor passes them.
 */
export class ThreadBuffer {
  constructor(
    private readonly redis: RedisClient,
    /** The shard's key prefix: ENGRAM_PREFIX with one shard, the shard's hash tag with several. */
    readonly prefix: string,
    private readonly options: BufferOptions,
  ) {
    redis.defineCommand('engramTrimToCursor', { numberOfKeys: 3, lua: TRIM_TO_CURSOR });
    redis.defineCommand('engramPostponeCeiling', {
      numberOfKeys: 1,
      lua: `if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1]) return 1 end return 0`,
    });
    redis.defineCommand('engramPark', { numberOfKeys: 4, lua: PARK });
  }

  keys(threadId: string) {
    const k = `${this.prefix}:thread:${threadId}`;
    return {
      turns: `${k}:turns`,
      ids: `${k}:ids`,
      meta: `${k}:meta`,
      lock: `${k}:lock`,
      ceilings: `${this.prefix}:ceilings`,
      parked: `${this.prefix}:parked`,
    };
  }

  /**
   * One round trip. Rejects with ConflictError when the thread's pending turns have another context.
   * EVALSHA by hand rather than ioredis' defineCommand, whose wrapper (its own command class and
   * an extra promise per call) is a measurable share of the hot path; a server that lost its
   * script cache gets the script itself once.
   */
  append(
    threadId: string,
    contextJson: string,
    maxWaitMs: number,
    policy: ReflectionPolicy,
    debounceMs: number,
    turns: TurnToAppend[],
  ): Promise<AppendResult> {
    const args = this.appendArgs(threadId, contextJson, maxWaitMs, policy, debounceMs, turns);
    // Inline callbacks, no named closure: tsx (npm start, the benches) names each with a call.
    return this.redis.evalsha(APPEND_TURNS_SHA, 4, ...args).then(
      (reply) => toAppendResult(reply, turns.length),
      (err: unknown) => {
        if (!(err instanceof Error && err.message.startsWith('NOSCRIPT'))) return appendFailed(threadId, err);
        return this.redis.eval(APPEND_TURNS, 4, ...args).then(
          (reply) => toAppendResult(reply, turns.length),
          (again: unknown) => appendFailed(threadId, again),
        );
      },
    );
  }

  /** EVALSHA's KEYS (four) and ARGV for APPEND_TURNS. */
  appendArgs(
    threadId: string,
    contextJson: string,
    maxWaitMs: number,
    policy: ReflectionPolicy,
    debounceMs: number,
    turns: TurnToAppend[],
  ): string[] {
    const k = this.keys(threadId);
    const settings = `${maxWaitMs}:${debounceMs}:${policy}:${this.options.dedupeWindowMs}`;
    const args = [k.turns, k.ids, k.meta, k.ceilings, contextJson, settings];
    for (const t of turns) args.push(t.clientId ?? '', t.json);
    return args;
  }

  /** Reads the thread's context, the turns after `cursor` (at most `max`) and `earlier` context turns. */
  async read(threadId: string, cursor: string | null, max: number, earlierCount: number): Promise<ThreadSnapshot> {
    const k = this.keys(threadId);
    const pipeline = this.redis.pipeline();
    pipeline.hget(k.meta, 'ctx');
    pipeline.xrange(k.turns, cursor ? `(${cursor}` : '-', '+', 'COUNT', max);
    if (cursor && earlierCount > 0) pipeline.xrevrange(k.turns, cursor, '-', 'COUNT', earlierCount);
    const results = (await pipeline.exec()) ?? [];
    for (const [err] of results) if (err) throw err;
    const ctxJson = results[0]?.[1] as string | null;
    const pending = (results[1]?.[1] as [string, string[]][]).map(toEntry);
    const earlier = ((results[2]?.[1] as [string, string[]][] | undefined) ?? []).map(toEntry).reverse();
    return { context: ctxJson ? contextSchema.parse(JSON.parse(ctxJson)) : null, pending, earlier };
  }

  /** After a commit: trims reflected turns and resets the thread's maxWait ceiling. */
  async trim(threadId: string, cursor: string, keep: number): Promise<boolean> {
    const k = this.keys(threadId);
    // Both sent at once (one round trip; the keys share the thread's shard): a committed
    // reflection also unparks the thread (an operator's retry, or its next turn's job).
    const [pending] = await Promise.all([
      this.redis.engramTrimToCursor(k.turns, k.meta, k.ceilings, threadId, cursor, keep, this.options.idleTtlMs),
      this.redis.zrem(k.parked, threadId),
    ]);
    return pending === 1;
  }

  /** Threads whose oldest pending turn is older than their maxWait, oldest first. */
  async dueCeilings(nowMs: number, limit: number): Promise<{ threadId: string; ceiling: number }[]> {
    const flat = await this.redis.zrangebyscore(
      `${this.prefix}:ceilings`,
      '-inf',
      nowMs,
      'WITHSCORES',
      'LIMIT',
      0,
      limit,
    );
    const due: { threadId: string; ceiling: number }[] = [];
    for (let i = 0; i < flat.length; i += 2) due.push({ threadId: flat[i] as string, ceiling: Number(flat[i + 1]) });
    return due;
  }

  /**
   * After a thread's reflection failed for good: forget its ceiling, so the sweeper does not retry
   * it forever, and its job flag, so that the next turn schedules a new job. Its turns stay
   * buffered for an operator's retry or that next job; until a reflection of it commits, it is
   * listed as parked (the metric and `npm run jobs -- parked` read the list). A thread with no
   * turns buffered is not parked (false): an erase ran while its last reflection failed, and a
   * parked thread with nothing to retry would never come unparked.
   */
  async park(threadId: string, nowMs = Date.now()): Promise<boolean> {
    const k = this.keys(threadId);
    return (await this.redis.engramPark(k.turns, k.ceilings, k.meta, k.parked, threadId, nowMs)) === 1;
  }

  /** Threads with turns waiting for a reflection: each has a ceiling until it commits or parks. */
  pendingThreads(): Promise<number> {
    return this.redis.zcard(`${this.prefix}:ceilings`);
  }

  /**
   * When the oldest pending turn was buffered, among the `sample` threads nearest their ceiling
   * (the ceiling is the oldest pending turn plus maxWait, so these are the oldest unless their
   * maxWait differs); null when none is pending. Two round trips, for a metrics scrape.
   */
  async oldestPendingTurnMs(sample = 100): Promise<number | null> {
    const threads = await this.redis.zrange(`${this.prefix}:ceilings`, 0, sample - 1);
    if (!threads.length) return null;
    const cursors = this.redis.pipeline();
    for (const t of threads) cursors.hget(this.keys(t).meta, 'cursor');
    const firsts = this.redis.pipeline();
    for (const [i, [, cursor]] of ((await cursors.exec()) ?? []).entries()) {
      const after = typeof cursor === 'string' ? `(${cursor}` : '-';
      firsts.xrange(this.keys(threads[i] as string).turns, after, '+', 'COUNT', 1);
    }
    let oldest: number | null = null;
    for (const [, entries] of (await firsts.exec()) ?? []) {
      const id = (entries as [string, string[]][] | null)?.[0]?.[0];
      const ms = id ? Number(id.split('-')[0]) : NaN;
      if (Number.isFinite(ms) && (oldest === null || ms < oldest)) oldest = ms;
    }
    return oldest;
  }

  /** Parked threads, longest parked first, and how many there are. */
  async parked(limit: number): Promise<{ count: number; threads: { threadId: string; parkedAt: number }[] }> {
    const key = `${this.prefix}:parked`;
    const [count, flat] = await Promise.all([
      this.redis.zcard(key),
      limit > 0 ? this.redis.zrange(key, 0, limit - 1, 'WITHSCORES') : Promise.resolve([]),
    ]);
    const threads: { threadId: string; parkedAt: number }[] = [];
    for (let i = 0; i < flat.length; i += 2)
      threads.push({ threadId: flat[i] as string, parkedAt: Number(flat[i + 1]) });
    return { count, threads };
  }

  /** Whether a thread is parked (its reflection failed for good, its turns kept). */
  async isParked(threadId: string): Promise<boolean> {
    return (await this.redis.zscore(this.keys(threadId).parked, threadId)) !== null;
  }

  /** Lets the next turn ask for a job again (after this producer failed to add the one it asked for). */
  async clearScheduled(threadId: string): Promise<void> {
    await this.redis.hdel(this.keys(threadId).meta, 'scheduled');
  }

  /**
   * Pushes a thread's ceiling forward, only if it is still the one the sweeper saw: a trim that
   * set a fresh one meanwhile wins, and a thread whose turns were reflected, or that was parked,
   * is not resurrected. Whether it was still the one seen (and is now postponed).
   */
  async postponeCeiling(threadId: string, seen: number, untilMs: number): Promise<boolean> {
    return (await this.redis.engramPostponeCeiling(`${this.prefix}:ceilings`, threadId, seen, untilMs)) === 1;
  }
}

export interface AppendResult {
  added: number;
  duplicates: number;
  /**
   * The first turn since the thread's last reflection started: its job must be added. Also a
   * re-send of only duplicates while the thread's job was asked for: the call that asked may
   * have timed out before its add (an add that finds the job is deduplicated).
   */
  needsJob: boolean;
  /** The thread's job was asked for with a longer window than these turns': move it earlier. */
  shorter: boolean;
}

/** The script's reply is added * 4 + shorter * 2 + needsJob; the rest of the turns sent were duplicates. */
function toAppendResult(reply: unknown, sent: number): AppendResult {
  const code = reply as number;
  const added = code >> 2;
  return { added, duplicates: sent - added, needsJob: (code & 1) === 1, shorter: (code & 2) === 2 };
}

function appendFailed(threadId: string, err: unknown): never {
  if (err instanceof Error && err.message.includes('CONTEXT_MISMATCH')) {
    throw new ConflictError(
      `thread ${threadId} has unreflected turns with another context; a thread belongs to one context until its turns are reflected`,
      undefined,
      { cause: err },
    );
  }
  throw err;
}

function toEntry([entryId, fields]: [string, string[]]): BufferedEntry {
  // Fields come as a flat [name, value, ...] list; we write exactly one: t = turn JSON.
  const json = fields[fields.indexOf('t') + 1];
  const stored = storedTurnSchema.parse(JSON.parse(json ?? 'null'));
  // What the client left out, the entry id gives: an id unique in the thread, and the time Redis
  // buffered the turn (one clock for every producer).
  const turn: BufferedTurn = {
    ...stored,
    id: stored.id ?? entryId,
    createdAt: stored.createdAt ?? new Date(Number(entryId.split('-')[0])).toISOString(),
  };
  return { entryId, turn };
}
