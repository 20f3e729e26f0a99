-- Which feed records are not stored as expected (Store.changed_records): ARGV[1] the records' key prefix
-- ("{prefix}r:"), ARGV[2] a digest's size in bytes (store.DIGEST_SIZE), ARGV[3] the digests their memos expect, end
-- to end; then the record ids, in the same order (keys are made here: a few thousand ids cost far less as plain
-- arguments than as keys and digests side by side). Returns the positions (1-based, among the ids) of the records
-- whose stored digest differs or that are gone. Read-only.
-- A record's id is "{feed}:{source}" (a feed's id holds no colon: store.feed_of_record), so a record of another
-- feed is never asked for under this feed's ids; the f a release before kept says the same. A memo's digest is
-- the 16-byte form (store.record_digest): a record written before it reads as changed, and is written again.
local prefix, size, digests = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local out = {}
for i = 4, #ARGV do
  local at = (i - 4) * size
  if redis.call('HGET', prefix .. ARGV[i], 'h') ~= string.sub(digests, at + 1, at + size) then
    out[#out + 1] = i - 3
  end
end
return out
