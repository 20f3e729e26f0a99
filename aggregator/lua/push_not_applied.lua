-- A push whose application failed, unless another delivery of it finished it meanwhile.
--
-- KEYS  push:{ingest id}, pushes:pending (zset: ingest id -> last start, ms)
-- ARGV  ingest_id, attempt (the failed delivery's token: its done_by had it landed), again_ms ('' : failed for good),
--       field, value...
-- A push done by another attempt (done_by, written in its data's own transaction) is left as it is: another
-- delivery (a redelivery after a lost worker, the sweeper's) applied it. Else its record takes the fields given;
-- with again_ms it is pending again from then and its finished time dropped (the failed write may have marked it
-- done: the commands after an error reply in a MULTI still run), without it leaves the pending pushes.
-- Returns 1 when it was written, 0 when left (gone, or done by another attempt).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local st = redis.call('HMGET', KEYS[1], 'status', 'done_by')
if st[1] == 'done' and st[2] ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  redis.call('HDEL', KEYS[1], 'finished_at')
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
return 1
