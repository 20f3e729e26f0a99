-- Which feed records are not stored as expected (Store.changed_records): KEYS[i] a record's key, ARGV[i] the
-- digest its memo expects. Returns the positions (1-based) of the records whose stored digest differs or that
-- are gone. Read-only.
-- A record's id is "{feed}:{source}" (a feed's id holds no colon: store.feed_of_record), so a record of another
-- feed is never asked for under this feed's ids; the f a release before kept says the same. A memo's digest is
-- the 16-byte form (store.record_digest): a record written before it reads as changed, and is written again.
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('HGET', key, 'h') ~= ARGV[i] then
    out[#out + 1] = i
  end
end
return out
