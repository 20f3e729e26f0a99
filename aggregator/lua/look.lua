-- What a small write reads before it plans, in one call under its WATCH (Store._look): KEYS[1] the writer lock,
-- KEYS[2] the feed's members, KEYS[3] its meta; ARGV[1] the key prefix, ARGV[2] '1' for a partial write (a push, or
-- a run some of whose files failed), ARGV[3] how many records it sends, then their ids, then the ids of the records it
-- keeps as stored (unchanged rows of a run). Read-only.
-- Returns {1} while a staged write holds the writer lock. Else {0, members, count, kept, token}: a full write gets
-- every member (it removes those it does not carry) and no kept list; a partial one only those of its sent records
-- that are members, each as {id, h, fac, o, a} (the stored record's digest, link, order and authority:
-- Store._read_records), and of its kept ones those that are members; count is the feed's size. A push of one
-- record to a feed of 100,000 reads one record, not the 100,000 ids. token: the feed's write token (meta w), false
-- when none.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1}
end
local count = redis.call('SCARD', KEYS[2])
local token = redis.call('HGET', KEYS[3], 'w')
if ARGV[2] ~= '1' then
  return {0, redis.call('SMEMBERS', KEYS[2]), count, {}, token}
end
local sent = tonumber(ARGV[3])
local found, kept = {}, {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('SISMEMBER', KEYS[2], id) == 1 then
    if i < 4 + sent then
      local r = redis.call('HMGET', ARGV[1] .. 'r:' .. id, 'h', 'fac', 'o', 'a')
      found[#found + 1] = {id, r[1], r[2], r[3], r[4]}
    else
      kept[#kept + 1] = id
    end
  end
end
return {0, found, count, kept, token}
