-- What a plan depends on in each facility: a digest of its composed record, members, tokens and
-- identifiers (not its read document: observations change that without changing any plan).
-- KEYS  c:{facility}...   Returns one SHA-1 (hex) per facility.
local out = {}
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'j', 'm', 't', 'x')
  out[#out + 1] = redis.sha1hex((v[1] or '') .. '\0' .. (v[2] or '') .. '\0' .. (v[3] or '') .. '\0' .. (v[4] or ''))
end
return out
