-- wrk script for bench/enqueue.ts (see bench/http-load.ts, which sets these variables):
--   LOAD_PATH     GET this path; unset: POST turns to /v1/threads/<id>/turns
--   LOAD_THREADS  thread id prefix, unique per run
--   LOAD_RATE     requests per second across all connections; unset or 0: closed loop, each
--                 connection sending its next request as soon as the last one is answered
-- Turns come in sessions of 20 per thread, like a chat, so every 20th turn also adds its
-- thread's reflection job.
local path = os.getenv("LOAD_PATH")
local threads = os.getenv("LOAD_THREADS") or "wrk-"
local rate = tonumber(os.getenv("LOAD_RATE") or "0")
local sent = 0

if rate > 0 then
  -- A fixed rate, which wrk itself does not offer: request k is due at start + k / rate, and
  -- wrk asks for a delay before every request (each connection's first included), so each
  -- request waits for the next free slot on one schedule shared by all connections. A stall of
  -- the server leaves slots behind; the connections that come free then send them at once, as
  -- users who do not wait for each other would. wrk's Lua has no clock finer than a second, so
  -- the monotonic clock comes from libc through LuaJIT's ffi.
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } load_timespec;
    int clock_gettime(int clock, load_timespec *t);
  ]]
  local CLOCK_MONOTONIC, ts = 1, ffi.new("load_timespec")
  local function now()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval, due = 1000 / rate, nil
  function delay()
    local t = now()
    due = due and due + interval or t
    return math.max(0, math.floor(due - t + 0.5))
  end
end

function request()
  if path then return wrk.format("GET", path) end
  local thread = threads .. math.floor(sent / 20)
  sent = sent + 1
  local body = '{"context":{"userId":"u-' .. thread .. '"},"messages":[{"role":"user","content":"message '
    .. sent .. ': I like trains and long walks"}]}'
  return wrk.format("POST", "/v1/threads/" .. thread .. "/turns", { ["content-type"] = "application/json" }, body)
end

-- One JSON line for the runner; latencies in microseconds from wrk's histogram.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'LOAD {"requests":%d,"durationUs":%d,"socketErrors":%d,"httpErrors":%d,"p50":%d,"p99":%d,"max":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.max))
end
