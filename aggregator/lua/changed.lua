-- Which feed records are not stored as expected (Store.changed_records): KEYS[i] a record's key, ARGV[1] the
-- feed id, ARGV[2] the key prefix, ARGV[i + 2] the digest its memo expects. Returns the positions (1-based) of
-- the records whose stored digest differs, that are gone, or that another feed now holds. Read-only.
-- A record keeps no f: its id ("{feed}:{source}", a feed's id holds no colon) says its feed (store.feed_of_record);
-- a release before this one kept it.
local feed = ARGV[1]
local out = {}
for i, key in ipairs(KEYS) do
  local stored = redis.call('HMGET', key, 'h', 'f')
  local f = stored[2]
  if not f and stored[1] and string.sub(key, #ARGV[2] + 3, #ARGV[2] + #feed + 3) == feed .. ':' then
    f = feed
  end
  if stored[1] ~= ARGV[i + 2] or f ~= feed then
    out[#out + 1] = i
  end
end
return out
