-- What a plan depends on in each facility: a digest of its composed record, members, tokens and
-- identifiers (not its read document: observations change that without changing any plan).
-- KEYS  c:{facility}...   ARGV  prefix.   Returns one SHA-1 (hex) per facility.
-- A facility composed from its founding record alone (j is the byte 2: store.COMPOSED_FROM_RECORD) is that
-- record's digest (r:{facility} h).
local out = {}
local skip = #ARGV[1] + 3  -- a facility's id follows prefix .. 'c:' in its key
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'j', 'm', 't', 'x')
  if v[1] == '\2' then
    v[1] = '\2' .. (redis.call('HGET', ARGV[1] .. 'r:' .. string.sub(KEYS[i], skip), 'h') or '')
  end
  out[#out + 1] = redis.sha1hex((v[1] or '') .. '\0' .. (v[2] or '') .. '\0' .. (v[3] or '') .. '\0' .. (v[4] or ''))
end
return out
