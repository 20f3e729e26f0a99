-- What a small write reads before it plans, in one call under its WATCH (Store._look): KEYS[1] the writer lock,
-- KEYS[2] the feed's members; ARGV[1] the key prefix, ARGV[2] '1' for a partial write (a push), ARGV[3..] the ids
-- of the records it carries (sent, or kept as stored). Read-only.
-- Returns {1} while a staged write holds the writer lock. Else {0, members, count}: a full write gets every member
-- (it removes those it does not carry); a partial one only those of its own records that are members, each as
-- {id, h, fac, o} (the stored record's digest, link and order: Store._read_records), and the feed's size: a push
-- of one record to a feed of 100,000 reads one record, not the 100,000 ids.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1}
end
local count = redis.call('SCARD', KEYS[2])
if ARGV[2] ~= '1' then
  return {0, redis.call('SMEMBERS', KEYS[2]), count}
end
local found = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('SISMEMBER', KEYS[2], id) == 1 then
    local r = redis.call('HMGET', ARGV[1] .. 'r:' .. id, 'h', 'fac', 'o')
    found[#found + 1] = {id, r[1], r[2], r[3]}
  end
end
return {0, found, count}
