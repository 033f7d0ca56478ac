import type { Redis, Result } from 'ioredis';
import type { ThreadBuffer } from './buffer.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    engramLeaseAcquire(...args: (string | number)[]): Result<[number, string, string, string, string], Context>;
    engramLeaseRenew(...args: (string | number)[]): Result<[number, string, string, string, string], Context>;
    engramLeaseRelease(...args: (string | number)[]): Result<number, Context>;
  }
}

/** Returns {held, gen, policy, firstPendingAt, maxWaitMs} of the thread; KEYS: lock, meta. */
const STATE = `
local m = redis.call('HMGET', KEYS[2], 'gen', 'policy', 'firstPendingAt', 'maxWaitMs')
return {held, m[1] or '0', m[2] or 'enqueue', m[3] or '', m[4] or '0'}`;

/** KEYS: lock, meta. ARGV: owner, leaseMs. */
const ACQUIRE = `
local held = 0
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then held = 1 end
${STATE}`;

/** KEYS: lock, meta. ARGV: owner, leaseMs. Extends the lease only if this owner still holds it. */
const RENEW = `
local held = 0
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  held = 1
end
${STATE}`;

/** KEYS: lock. ARGV: owner. Compare-and-delete: never releases another owner's lease. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export interface LeaseState {
  held: boolean;
  /** Bumped by every append: a change means the thread got new turns. */
  gen: number;
  policy: 'enqueue' | 'rollback';
  /** When the oldest unreflected turn arrived (ms), or null when none is pending. */
  firstPendingAt: number | null;
  maxWaitMs: number;
}

/**
 * At most one reflection per thread at a time, across every worker process (invariant 4).
 * BullMQ's deduplication already keeps one job per thread; the lease also covers what it cannot:
 * a stalled job re-run while the original still works, or a failed job retried by an operator
 * while a new one exists. A lease expires on its own when its holder dies (SIGKILL).
 */
export class ThreadLease {
  constructor(
    private readonly redis: Redis,
    private readonly buffer: ThreadBuffer,
    readonly leaseMs: number,
  ) {
    redis.defineCommand('engramLeaseAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    redis.defineCommand('engramLeaseRenew', { numberOfKeys: 2, lua: RENEW });
    redis.defineCommand('engramLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
  }

  async acquire(threadId: string, owner: string): Promise<LeaseState> {
    const k = this.buffer.keys(threadId);
    return toState(await this.redis.engramLeaseAcquire(k.lock, k.meta, owner, this.leaseMs));
  }

  /** Extends the lease and reads the thread's state, in one round trip. */
  async renew(threadId: string, owner: string): Promise<LeaseState> {
    const k = this.buffer.keys(threadId);
    return toState(await this.redis.engramLeaseRenew(k.lock, k.meta, owner, this.leaseMs));
  }

  async release(threadId: string, owner: string): Promise<void> {
    await this.redis.engramLeaseRelease(this.buffer.keys(threadId).lock, owner);
  }
}

function toState([held, gen, policy, firstPendingAt, maxWaitMs]: [number, string, string, string, string]): LeaseState {
  return {
    held: held === 1,
    gen: Number(gen),
    policy: policy === 'rollback' ? 'rollback' : 'enqueue',
    firstPendingAt: firstPendingAt ? Number(firstPendingAt) : null,
    maxWaitMs: Number(maxWaitMs),
  };
}
