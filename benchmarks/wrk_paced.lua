-- wrk script for benchmarks/api_load.py: each connection waits before each of its requests, a random pause of
-- 0 to 2 x `pause` ms (the first script argument; `pause` on average), so that the connections together offer a
-- steady rate instead of as many requests as the server can take. The pauses are random so that the connections do
-- not fire together: with one fixed pause they stay in step and arrive as bursts of 50. Latency is measured from
-- each request's send, as in wrk's unpaced runs.
local pause

function init(args)
  pause = tonumber(args[1])
end

function delay()
  return math.random(0, 2 * pause)
end
