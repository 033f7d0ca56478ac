import { createHash } from 'node:crypto';

/**
 * Lua for the thread buffer. Each script is one atomic Redis round trip.
 *
 * Keys of one thread (K = `<prefix>:thread:<threadId>`):
 *   K:turns  stream  one entry per buffered turn (fields: t = turn JSON); entry ids order turns,
 *                    carry the time Redis buffered them (the newest one's is the thread's last
 *                    turn) and stand in for a message id the client did not send; the last
 *                    reflected entry id is the thread's cursor (kept in Postgres)
 *   K:ids    zset    client message id -> first-seen ms, for idempotent enqueue within a window
 *   K:meta   hash    ctx (context JSON), firstPendingAt, settings (packed, see APPEND_TURNS) and
 *                    the same one per field (debounceMs, maxWaitMs, policy), and scheduled (set
 *                    by the append that asked for a job, cleared when a reflection of the thread
 *                    starts: later turns then ask for a follow-up)
 *   K:lock   string  the lease of the one reflection running for the thread (see thread-lease.ts)
 * Fleet-wide:
 *   <prefix>:ceilings  zset  threadId -> firstPendingAt + maxWait: the maxWait ceiling, and the
 *                            index of threads with unreflected turns that a sweeper checks
 */

/**
 * Appends turns. KEYS: turns, ids, meta, ceilings.
 * ARGV: ctxJson, settings ("maxWaitMs:debounceMs:policy:dedupeWindowMs", compared as one string so
 * that the common turn checks them in one step), then (clientId, turnJson) pairs; an empty
 * clientId marks a turn without a client id, which no client can send again, so it skips the id
 * window (one call and a 24-hour entry fewer per turn). The thread id is read off the keys: every
 * argument is work for ioredis, Redis' parser and Lua on the hot path.
 * Returns added * 4 + shorter * 2 + needsJob (one integer, the cheapest reply; duplicates are the
 * turns sent less those added; shorter: the thread's job waits for a longer window than these
 * turns ask for) or the error CONTEXT_MISMATCH. needsJob is 1 only for the first turn since
 * the thread's last reflection started, and for a call of nothing but duplicates while the flag
 * is set (see below): every other turn costs this one call.
 * Each redis.call costs more inside a script than most commands themselves (INFO commandstats;
 * `bench:enqueue` prints the script's time): a later turn with the thread's settings unchanged
 * makes two (HMGET, XADD), five with client ids (also TIME, ZADD, PEXPIRE), and the bookkeeping (ceiling,
 * id-window trim, TTLs, settings) runs once per burst or when a setting changes. The time of the
 * thread's last turn is its newest entry id, so no call records it.
 * Uses the server clock (TIME, or the ms of the entry id XADD made) so that producers with skewed
 * clocks agree.
 */
export const APPEND_TURNS = `
local now
local state = redis.call('HMGET', KEYS[3], 'firstPendingAt', 'ctx', 'scheduled', 'settings')
if state[2] and state[2] ~= ARGV[1] then
  -- The reply names no context: it would show one user's context to another.
  if state[1] then return redis.error_reply('CONTEXT_MISMATCH') end
  -- An idle thread reused with another context: forget its turns and message ids, so that none
  -- of the old context's turns reach the new one's reflection as earlier context.
  redis.call('DEL', KEYS[1], KEYS[2])
end
local added, remembered, entry = 0, false, nil
for i = 3, #ARGV, 2 do
  local fresh = ARGV[i] == ''
  if not fresh then
    if not now then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    if redis.call('ZADD', KEYS[2], 'NX', now, ARGV[i]) == 1 then
      fresh, remembered = true, true
    elseif tonumber(redis.call('ZSCORE', KEYS[2], ARGV[i])) <= now - tonumber(string.match(ARGV[2], ':(%d+)$')) then
      -- Remembered past its window (the set is trimmed once per burst): a new send, from now.
      redis.call('ZADD', KEYS[2], now, ARGV[i])
      fresh, remembered = true, true
    end
  end
  if fresh then
    entry = redis.call('XADD', KEYS[1], '*', 't', ARGV[i + 1])
    added = added + 1
  end
end
if added == 0 then
  -- Only re-sends get here, never the common turn. A set flag says a job was asked for, but the
  -- append that set it may have run after its producer gave up on a stalled Redis (503, send
  -- again with the same ids), so nobody added the job: ask again. An add that finds the job
  -- is deduplicated by BullMQ.
  if state[3] then return 1 end
  return 0
end
-- Without a client id there was no TIME call: the entry id starts with the server's clock (ms).
now = now or tonumber(string.match(entry, '^(%d+)'))
local maxWait, debounce, policy, window = string.match(ARGV[2], '^(%d+):(%d+):(%a+):(%d+)$')
maxWait = tonumber(maxWait)
-- Client ids are remembered for the window past the thread's last one; older ones are trimmed
-- once per burst below.
if remembered then redis.call('PEXPIRE', KEYS[2], window) end
local scheduledAt = tonumber(state[3])
-- A flag older than twice maxWait stands for a job that is long gone (its producer died between
-- its two calls, an operator removed it): ask again. A job that does exist dedups the add.
local flagged = scheduledAt and now - scheduledAt <= 2 * maxWait
-- The common turn: the thread is pending, its job asked for, its settings as they were.
if state[1] and flagged and state[4] == ARGV[2] then return added * 4 end
-- The settings also stand one per field, for the scripts that read one (lease, trim).
local fields = {'ctx', ARGV[1], 'settings', ARGV[2], 'maxWaitMs', maxWait, 'debounceMs', debounce, 'policy', policy}
-- KEYS[4] is <prefix>:ceilings, so the id in KEYS[1], <prefix>:thread:<threadId>:turns, starts at
-- #prefix + #':thread:' + 1 = #KEYS[4] - #':ceilings' + 9 = #KEYS[4], and ends before ':turns'.
local threadId = string.sub(KEYS[1], #KEYS[4], -7)
local first = tonumber(state[1])
if not first then
  -- The thread was idle: its keys may carry the idle TTL set by the last trim, and every
  -- pending thread gets a ceiling, the sweeper's safety net whatever happens to its job.
  first = now
  fields[#fields + 1] = 'firstPendingAt'
  fields[#fields + 1] = now
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[3])
  redis.call('ZADD', KEYS[4], 'NX', first + maxWait, threadId)
end
local needsJob, shorter = 0, 0
-- A job asked for with a longer window than these turns': it would wake too late, so the
-- producer moves it earlier (a second call, only then).
if flagged and state[4] and tonumber(debounce) < tonumber(string.match(state[4], '^%d+:(%d+):')) then shorter = 1 end
if not flagged then
  needsJob = 1
  fields[#fields + 1] = 'scheduled'
  fields[#fields + 1] = now
  -- NX: an existing ceiling stands; a missing one (cleared after a final failure) is set from
  -- the oldest pending turn.
  redis.call('ZADD', KEYS[4], 'NX', first + maxWait, threadId)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(window))
end
redis.call('HSET', KEYS[3], unpack(fields))
return added * 4 + shorter * 2 + needsJob
`;

/** The append's script cache key: the hot path sends EVALSHA with it (buffer.ts says why). */
export const APPEND_TURNS_SHA = createHash('sha1').update(APPEND_TURNS).digest('hex');

/**
 * After a committed reflection: drops turns at or before the cursor except the last `keep`
 * (context for the next reflection), and resets the maxWait ceiling from the oldest turn still
 * pending, or clears it and lets the idle thread expire.
 * KEYS: turns, meta, ceilings. ARGV: threadId, cursor, keep, idleTtlMs.
 * Returns 1 when turns are still pending after the cursor, 0 when none are, -1 when a later
 * cursor was trimmed to already (nothing done).
 */
export const TRIM_TO_CURSOR = `
-- Stream ids order as (ms, seq) pairs; a trim for an older cursor than one already trimmed to
-- comes from a slow run that another run overtook: applying it would mark reflected context
-- turns as pending again.
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local last = redis.call('HGET', KEYS[2], 'cursor')
if last and older(ARGV[2], last) then return -1 end
redis.call('HSET', KEYS[2], 'cursor', ARGV[2])
local keep = tonumber(ARGV[3])
local reflected = redis.call('XREVRANGE', KEYS[1], ARGV[2], '-', 'COUNT', keep + 1)
if #reflected > keep then
  if keep == 0 then
    local nextId = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+', 'COUNT', 1)
    if #nextId == 0 then
      redis.call('XTRIM', KEYS[1], 'MAXLEN', 0)
    else
      redis.call('XTRIM', KEYS[1], 'MINID', nextId[1][1])
    end
  else
    redis.call('XTRIM', KEYS[1], 'MINID', reflected[keep][1])
  end
end
local pending = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+', 'COUNT', 1)
if #pending == 0 then
  -- Nothing pending: the next turn asks for a job again (at worst an add that BullMQ dedups),
  -- so no flag left by a producer that died can strand the thread.
  redis.call('HDEL', KEYS[2], 'firstPendingAt', 'scheduled')
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
else
  local first = tonumber(string.match(pending[1][1], '^(%d+)'))
  local maxWait = tonumber(redis.call('HGET', KEYS[2], 'maxWaitMs') or '0')
  redis.call('HSET', KEYS[2], 'firstPendingAt', first)
  redis.call('ZADD', KEYS[3], first + maxWait, ARGV[1])
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
return #pending
`;

/**
 * Parks a thread whose reflection failed for good (buffer.ts park), unless it has no turns
 * buffered: an erase ran meanwhile. KEYS: turns, ceilings, meta, parked; ARGV: thread id, now.
 */
export const PARK = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], 'scheduled')
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
return 1
`;
