import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedRedis } from '../src/app/embedded-redis.js';
import { createLogger } from '../src/observability/logger.js';
import { ThreadBuffer } from '../src/queue/buffer.js';
import { shardTags } from '../src/queue/shards.js';
import { ThreadLease } from '../src/queue/thread-lease.js';
import { deleteKeys, TEST_REDIS_SHARDS, TEST_REDIS_URL, testRedis, uniqueName } from './helpers/harness.js';

/** The thread buffer's scripts on their own, driven through the interleavings that matter. */
describe('thread buffer', () => {
  const prefix = `engram-test-${uniqueName('buf')}`;
  const redis = testRedis();
  redis.on('error', () => undefined);
  // One shard's buffer: the prefix itself, or on a cluster (several shards) the last shard's tag.
  const tag = shardTags(prefix, TEST_REDIS_SHARDS).at(-1) as string;
  const buffer = new ThreadBuffer(redis, tag, { dedupeWindowMs: 3_600_000, idleTtlMs: 3_600_000 });
  const lease = new ThreadLease(redis, buffer, 5_000);
  const turn = (id: string) => ({
    clientId: id,
    json: JSON.stringify({ id, role: 'user', content: id, createdAt: '2026-01-01T00:00:00Z' }),
  });
  const append = (thread: string, ctx: string, ids: string[], debounceMs = 1_000) =>
    buffer.append(thread, ctx, 60_000, 'enqueue', debounceMs, ids.map(turn));
  const lastId = async (thread: string) => (await buffer.read(thread, null, 100, 0)).pending.at(-1)!.entryId;

  beforeAll(async () => {
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
    await deleteKeys(TEST_REDIS_URL, prefix);
  });

  it('a job flag left by a producer that died cannot strand the thread', async () => {
    const ctx = '{"userId":"u"}';
    // No quiet window: the reflection may start at once.
    expect((await append('strand', ctx, ['t0'], 0)).needsJob).toBe(true);
    // A reflection starts (clears the flag); a turn arrives and its producer dies before adding
    // the follow-up job; the reflection read that turn too, commits and trims everything.
    expect((await lease.acquire('strand', 'job-1')).status).toBe('held');
    expect((await append('strand', ctx, ['t1'], 0)).needsJob).toBe(true); // ...but no job is added
    expect(await buffer.trim('strand', await lastId('strand'), 0)).toBe(false);
    await lease.release('strand', 'job-1');
    // The next turn asks for a job again, and the thread has a ceiling for the sweeper.
    expect((await append('strand', ctx, ['t2'], 0)).needsJob).toBe(true);
    expect(await redis.zscore(buffer.keys('strand').ceilings, 'strand')).not.toBeNull();
  });

  it('a trim for an older cursor, from a run another one overtook, changes nothing', async () => {
    const ctx = '{"userId":"u"}';
    await append('late', ctx, ['a', 'b', 'c']);
    const entries = (await buffer.read('late', null, 100, 0)).pending.map((e) => e.entryId);
    expect(await buffer.trim('late', entries[2]!, 2)).toBe(false); // the newer run: all reflected
    const meta = () => redis.hgetall(buffer.keys('late').meta);
    const before = await meta();
    expect(before.firstPendingAt).toBeUndefined();
    expect(await buffer.trim('late', entries[0]!, 2)).toBe(false); // the overtaken run, late
    expect(await meta()).toEqual(before);
    expect(await redis.zscore(buffer.keys('late').ceilings, 'late')).toBeNull();
  });

  it('an idle thread reused with another context keeps nothing of the old one', async () => {
    await append('reused', '{"userId":"alice"}', ['alice-1', 'alice-2']);
    await expect(append('reused', '{"userId":"bob"}', ['bob-0'])).rejects.toThrow(/another context; a thread belongs/);
    await expect(append('reused', '{"userId":"bob"}', ['bob-0'])).rejects.not.toThrow(/alice/);
    const cursor = await lastId('reused');
    await buffer.trim('reused', cursor, 4); // alice's turns reflected, kept as context
    const res = await append('reused', '{"userId":"bob"}', ['alice-1', 'bob-1']);
    expect(res).toMatchObject({ added: 2, duplicates: 0 }); // alice's message ids are forgotten too
    const read = await buffer.read('reused', cursor, 100, 4);
    expect(read.earlier).toEqual([]);
    expect(read.pending.map((e) => e.turn.id)).toEqual(['alice-1', 'bob-1']);
    expect(read.context).toEqual({ userId: 'bob' });
  });
  it('remembers client message ids for the window, and nothing for turns sent without one', async () => {
    const ctx = '{"userId":"u"}';
    const bare = { clientId: undefined, json: JSON.stringify({ role: 'user', content: 'x' }) };
    expect(await buffer.append('ids', ctx, 60_000, 'enqueue', 1_000, [bare])).toMatchObject({ added: 1 });
    expect(await redis.exists(buffer.keys('ids').ids)).toBe(0);
    expect(await append('ids', ctx, ['c-1'])).toMatchObject({ added: 1, duplicates: 0 });
    expect(await redis.zrange(buffer.keys('ids').ids, 0, -1)).toEqual(['c-1']);
    // The window is bounded even when the thread's first turn carried no client id.
    expect(await redis.pttl(buffer.keys('ids').ids)).toBeGreaterThan(0);
    expect(await append('ids', ctx, ['c-1'])).toMatchObject({ added: 0, duplicates: 1 });
  });

  it('a re-sent message leaves no trace in the buffer, in the same call or a later one', async () => {
    const ctx = '{"userId":"u"}';
    expect(await append('resend', ctx, ['r-1', 'r-1', 'r-2'])).toMatchObject({ added: 2, duplicates: 1 });
    expect(await append('resend', ctx, ['r-2', 'r-3'])).toMatchObject({ added: 1, duplicates: 1 });
    expect((await buffer.read('resend', null, 100, 0)).pending.map((e) => e.turn.id)).toEqual(['r-1', 'r-2', 'r-3']);
    expect(await redis.xlen(buffer.keys('resend').turns)).toBe(3);
  });

  it('a re-send to a thread whose buffer is gone but whose message ids are remembered leaves no key without a TTL', async () => {
    const ctx = '{"userId":"u"}';
    await append('gone', ctx, ['g-1']);
    const keys = buffer.keys('gone');
    // What an idle thread's expired stream and meta look like while its id window still runs.
    await redis.del(keys.turns, keys.meta);
    expect(await append('gone', ctx, ['g-1'])).toMatchObject({ added: 0, duplicates: 1 });
    expect(await redis.xlen(keys.turns)).toBe(0);
    if (await redis.exists(keys.turns)) expect(await redis.pttl(keys.turns)).toBeGreaterThan(0);
  });

  it('a later turn that changes a setting of its thread writes it', async () => {
    const ctx = '{"userId":"u"}';
    const settings = () => redis.hmget(buffer.keys('settings').meta, 'policy', 'debounceMs', 'maxWaitMs');
    await buffer.append('settings', ctx, 60_000, 'enqueue', 1_000, [turn('s-1')]);
    await buffer.append('settings', ctx, 60_000, 'enqueue', 1_000, [turn('s-2')]);
    expect(await settings()).toEqual(['enqueue', '1000', '60000']);
    await buffer.append('settings', ctx, 60_000, 'rollback', 2_500, [turn('s-3')]);
    expect(await settings()).toEqual(['rollback', '2500', '60000']);
  });
  it('says when turns ask for a shorter window than the one the pending job was asked with', async () => {
    const ctx = '{"userId":"u"}';
    expect(await append('shorter', ctx, ['w-1'], 30_000)).toMatchObject({ needsJob: true, shorter: false });
    // The job was asked for with 30 s: turns that want 100 ms must move it.
    expect(await append('shorter', ctx, ['w-2'], 100)).toMatchObject({ needsJob: false, shorter: true });
    expect(await append('shorter', ctx, ['w-3'], 100)).toMatchObject({ needsJob: false, shorter: false });
    expect(await append('shorter', ctx, ['w-4'], 5_000)).toMatchObject({ needsJob: false, shorter: false });
  });

  it('takes an id again once its window has passed, though the thread was never idle since', async () => {
    const windowed = new ThreadBuffer(redis, tag, { dedupeWindowMs: 300, idleTtlMs: 3_600_000 });
    const send = (id: string) => windowed.append('window', '{"userId":"u"}', 60_000, 'enqueue', 60_000, [turn(id)]);
    expect(await send('a')).toMatchObject({ added: 1, needsJob: true });
    // Later turns of the same burst keep the id set alive; only a burst's first turn trims it.
    for (const id of ['b', 'c', 'd']) {
      await new Promise((r) => setTimeout(r, 150));
      expect(await send(id)).toMatchObject({ added: 1, needsJob: false });
    }
    expect(await send('a')).toMatchObject({ added: 1, duplicates: 0 });
    expect(await send('a')).toMatchObject({ added: 0, duplicates: 1 });
  });

  it("a reflection waits out the quiet window from the thread's newest turn", async () => {
    const ctx = '{"userId":"u"}';
    // A quiet window well inside maxWait (60 s), whose ceiling would cut the wait short.
    await append('quiet', ctx, ['q-1'], 30_000);
    await new Promise((r) => setTimeout(r, 300));
    await append('quiet', ctx, ['q-2'], 30_000);
    const early = await lease.acquire('quiet', 'job-q');
    expect(early.status).toBe('not-quiet');
    // From q-2, not from q-1 (300 ms earlier).
    expect(early.waitMs).toBeGreaterThan(29_800);
    expect(early.waitMs).toBeLessThanOrEqual(30_000);
  });
  it('a turn without a client id reads back with its entry id and the time Redis buffered it', async () => {
    const before = Date.now();
    const bare = { clientId: undefined, json: JSON.stringify({ role: 'user', content: 'no id, no time' }) };
    await buffer.append('bare', '{"userId":"u"}', 60_000, 'enqueue', 1_000, [bare, turn('with-id')]);
    const [first, second] = (await buffer.read('bare', null, 10, 0)).pending;
    expect(first!.turn.id).toBe(first!.entryId);
    expect(Date.parse(first!.turn.createdAt)).toBeGreaterThanOrEqual(before - 1_000);
    expect(Date.parse(first!.turn.createdAt)).toBeLessThanOrEqual(Date.now() + 1_000);
    expect(second!.turn).toMatchObject({ id: 'with-id', createdAt: '2026-01-01T00:00:00Z' });
  });
  it("indexes a pending thread's ceiling under its exact id, colons and tenant included", async () => {
    for (const id of ['acme/t:1@x', 'a:thread:b:turns']) {
      expect((await append(id, '{"userId":"u"}', ['c-1'])).needsJob).toBe(true);
      expect(await redis.zscore(buffer.keys(id).ceilings, id)).not.toBeNull();
    }
  });
  it('appends after Redis lost its script cache (a restart, SCRIPT FLUSH)', async () => {
    // Its own redis-server: SCRIPT FLUSH empties every script of a server, and test files run
    // side by side on the shared one (a flush there sent another file's append down EVAL).
    const dir = await mkdtemp(join(tmpdir(), 'engram-flush-'));
    const own = await startEmbeddedRedis(dir, createLogger({ level: 'silent' }));
    const conn = new Redis(own.url);
    try {
      const flushed = new ThreadBuffer(conn, prefix, { dedupeWindowMs: 3_600_000, idleTtlMs: 3_600_000 });
      const send = (id: string) => flushed.append('flushed', '{"userId":"u"}', 60_000, 'enqueue', 1_000, [turn(id)]);
      expect(await send('f-1')).toMatchObject({ added: 1, duplicates: 0 }); // the first ever: EVAL
      await conn.script('FLUSH');
      expect(await send('f-1')).toMatchObject({ added: 0, duplicates: 1 });
      expect(await send('f-2')).toMatchObject({ added: 1, duplicates: 0 });
      expect(await conn.xlen(flushed.keys('flushed').turns)).toBe(2);
    } finally {
      conn.disconnect();
      await own.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
