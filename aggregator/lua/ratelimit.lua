-- A rate limit shared by every process: reserve the next free slot, return how long to wait (ms).
--
-- KEYS[1]  the limiter's key (holds the next free time, epoch ms)
-- ARGV     interval_ms, defer_ms (0, or a server-asked pause such as Retry-After)
-- Uses Redis's own clock, so hosts with skewed clocks still share one schedule.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local defer = tonumber(ARGV[2])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
if defer > 0 then
  next_free = math.max(next_free, now + defer)
  redis.call('SET', KEYS[1], next_free, 'PX', defer + interval + 60000)
  return next_free - now
end
local slot = math.max(now, next_free)
redis.call('SET', KEYS[1], slot + interval, 'PX', slot + interval - now + 60000)
return slot - now
