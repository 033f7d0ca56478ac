import type { Result } from 'ioredis';
import type { RedisClient } from './connection.js';
import type { ThreadBuffer } from './buffer.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    engramLeaseAcquire(...args: (string | number)[]): Result<[string, number, number, string, string, number], Context>;
    engramLeaseRenew(...args: (string | number)[]): Result<[number, string, string, number], Context>;
    engramLeaseRelease(...args: (string | number)[]): Result<number, Context>;
  }
}

/**
 * Reads the thread once per script (KEYS: lock, meta, turns; needs \`now\`, server ms): \`m\` is its
 * meta {policy, firstPendingAt, maxWaitMs, debounceMs}, \`last\` its newest buffered entry.
 * \`state(held)\` returns {held, gen, policy, overdue}. The generation is the newest entry's id: it
 * changes exactly when a turn is added. Overdue: the oldest pending turn is older than maxWait.
 * Both on the Redis clock, like every other time the thread's keys hold, so a worker's skewed
 * clock changes nothing. The scripts' own writes (the lock, the job flag) change neither read.
 */
const STATE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local m = redis.call('HMGET', KEYS[2], 'policy', 'firstPendingAt', 'maxWaitMs', 'debounceMs')
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local function state(held)
  local gen = ''
  if #last > 0 then gen = last[1][1] end
  local overdue = 0
  if m[2] and now >= tonumber(m[2]) + tonumber(m[3] or '0') then overdue = 1 end
  return {held, gen, m[1] or 'enqueue', overdue}
end`;

/**
 * KEYS: lock, meta, turns. ARGV: owner, leaseMs. Returns {status, waitMs, ...state}.
 * The lazy debounce: a job that wakes before its thread is quiet (no turn for debounceMs) and
 * before the maxWait ceiling gets 'not-quiet' and how long to wait. Otherwise it takes the
 * lease ('busy' if another reflection holds it) and clears the thread's job flag, so that turns
 * from now on ask for a follow-up job; turns before this point are in what the reflection reads.
 */
const ACQUIRE = `${STATE}
local status, waitMs = 'held', 0
if m[2] then
  -- The newest entry id starts with the ms Redis buffered the thread's last turn at.
  local lastTurnAt = 0
  if #last > 0 then lastTurnAt = tonumber(string.match(last[1][1], '^(%d+)')) end
  local quietAt = lastTurnAt + tonumber(m[4] or '0')
  local ceiling = tonumber(m[2]) + tonumber(m[3] or '0')
  if now < quietAt and now < ceiling then
    status = 'not-quiet'
    waitMs = math.min(quietAt, ceiling) - now
  end
end
if status == 'held' then
  if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    redis.call('HDEL', KEYS[2], 'scheduled')
  else
    status = 'busy'
  end
end
local s = state(status == 'held' and 1 or 0)
return {status, waitMs, s[1], s[2], s[3], s[4]}`;

/** KEYS: lock, meta, turns. ARGV: owner, leaseMs. Extends the lease only if this owner still holds it. */
const RENEW = `${STATE}
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return state(1)
end
return state(0)`;

/** KEYS: lock. ARGV: owner. Compare-and-delete: never releases another owner's lease. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface LeaseState {
  held: boolean;
  /** The newest buffered turn's id: a change means the thread got new turns. */
  gen: string;
  policy: 'enqueue' | 'rollback';
  /** The oldest unreflected turn is older than maxWait (on the Redis clock). */
  overdue: boolean;
}

/**
 * At most one reflection per thread at a time, across every worker process (invariant 4).
 * BullMQ's deduplication already keeps one job per thread; the lease also covers what it cannot:
 * a stalled job re-run while the original still works, or a failed job retried by an operator
 * while a new one exists. A lease expires on its own when its holder dies (SIGKILL).
 */
export class ThreadLease {
  constructor(
    private readonly redis: RedisClient,
    /** Where a thread's keys are: one ThreadBuffer, or every shard's (ThreadBuffers). */
    private readonly buffer: Pick<ThreadBuffer, 'keys'>,
    readonly leaseMs: number,
  ) {
    redis.defineCommand('engramLeaseAcquire', { numberOfKeys: 3, lua: ACQUIRE });
    redis.defineCommand('engramLeaseRenew', { numberOfKeys: 3, lua: RENEW });
    redis.defineCommand('engramLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
  }

  /** Takes the lease if the thread is quiet (or overdue) and no other reflection holds it. */
  async acquire(
    threadId: string,
    owner: string,
  ): Promise<LeaseState & { status: 'held' | 'busy' | 'not-quiet'; waitMs: number }> {
    const k = this.buffer.keys(threadId);
    const [status, waitMs, ...state] = await this.redis.engramLeaseAcquire(
      k.lock,
      k.meta,
      k.turns,
      owner,
      this.leaseMs,
    );
    return {
      status: status as 'held' | 'busy' | 'not-quiet',
      waitMs,
      ...toState(state),
    };
  }

  /** Extends the lease and reads the thread's state, in one round trip. */
  async renew(threadId: string, owner: string): Promise<LeaseState> {
    const k = this.buffer.keys(threadId);
    return toState(await this.redis.engramLeaseRenew(k.lock, k.meta, k.turns, owner, this.leaseMs));
  }

  async release(threadId: string, owner: string): Promise<void> {
    await this.redis.engramLeaseRelease(this.buffer.keys(threadId).lock, owner);
  }
}

function toState([held, gen, policy, overdue]: [number, string, string, number]): LeaseState {
  return { held: held === 1, gen, policy: policy === 'rollback' ? 'rollback' : 'enqueue', overdue: overdue === 1 };
}
