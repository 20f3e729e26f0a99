-- Store a partner push once per event id, atomically: both keys or neither.
--
-- KEYS  push:event:{feed}:{event id}, push:{ingest id}, pushes:pending (zset: ingest id -> last start, ms)
-- ARGV  ingest_id, event_ttl, push_ttl, field, value, ...
-- Returns false when stored, else the ingest id that already accepted this event id. A stored push is
-- pending until it is done or failed: a sweeper queues it again if nobody finished it in time.
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('EXPIRE', KEYS[2], ARGV[3])
local t = redis.call('TIME')
redis.call('ZADD', KEYS[3], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
return false
