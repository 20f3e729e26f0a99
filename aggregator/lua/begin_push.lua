-- A push's application begins, in one round trip with reading it: when it is stored and not finished, it is
-- pending again from at_ms (the sweeper's clock starts again), its record takes the fields given and its feed's
-- health the fields after them. A push that is missing or finished is only read.
--
-- KEYS  push:{ingest id}, pushes:pending (zset: ingest id -> last start, ms), the feed's state hash
-- ARGV  ingest_id, at_ms, finished statuses (space-separated: store.PushRecord.DONE), n (pairs for the push),
--       field, value, ... (n pairs for the push), then field, value, ... for the feed's state
-- Returns the push's fields as they were stored before (HGETALL): empty when there is no such push.
local before = redis.call('HGETALL', KEYS[1])
if #before == 0 then return before end
for i = 1, #before, 2 do
  if before[i] == 'status' and string.find(' ' .. ARGV[3] .. ' ', ' ' .. before[i + 1] .. ' ', 1, true) then
    return before
  end
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
local n = tonumber(ARGV[4])
local push, state = {}, {}
for i = 5, 4 + 2 * n do push[#push + 1] = ARGV[i] end
for i = 5 + 2 * n, #ARGV do state[#state + 1] = ARGV[i] end
if #push > 0 then redis.call('HSET', KEYS[1], unpack(push)) end
if #state > 0 then redis.call('HSET', KEYS[3], unpack(state)) end
return before
