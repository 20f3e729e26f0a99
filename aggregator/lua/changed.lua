-- Which feed records are not stored as expected (Store.changed_records): KEYS[i] a record's key, ARGV[1] the
-- feed id, ARGV[i + 1] the digest its memo expects. Returns the positions (1-based) of the records whose stored
-- digest differs, that are gone, or that another feed now holds. Read-only.
local out = {}
for i, key in ipairs(KEYS) do
  local stored = redis.call('HMGET', key, 'h', 'f')
  if stored[1] ~= ARGV[i + 1] or stored[2] ~= ARGV[1] then
    out[#out + 1] = i
  end
end
return out
