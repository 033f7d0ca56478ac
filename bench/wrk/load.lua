-- wrk script for bench/enqueue.ts (see bench/http-load.ts, which sets these variables):
--   LOAD_PATH     GET this path; unset: POST turns to /v1/threads/<id>/turns
--   LOAD_THREADS  thread id prefix, unique per run
--   LOAD_PACE_MS  think time per connection; unset or 0: closed loop, as fast as answered
-- Turns come in sessions of 20 per thread, like a chat, so every 20th turn also adds its
-- thread's reflection job.
local path = os.getenv("LOAD_PATH")
local threads = os.getenv("LOAD_THREADS") or "wrk-"
local pace = tonumber(os.getenv("LOAD_PACE_MS") or "0")
local sent = 0

if pace > 0 then
  local calls, connections = 0, tonumber(os.getenv("LOAD_CONNECTIONS"))
  -- wrk asks for a delay before every request, a connection's first one included. The first
  -- round staggers the connections across one pace; after that a jitter of +-10% keeps them
  -- from bunching up again after a stall, so the load stays an even stream at the set rate.
  function delay()
    calls = calls + 1
    if calls <= connections then return math.floor((calls - 1) * pace / connections) end
    return math.floor(pace * (0.9 + 0.2 * math.random()) + 0.5)
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
