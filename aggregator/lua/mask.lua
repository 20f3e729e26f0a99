-- Keep the visible state of facilities a staged write is about to change (see visible.lua); loaded after
-- readdoc.lua.
-- KEYS  masks, stage:{gen}:m, staging, then c:{facility_id}...
-- ARGV  prefix, gen
-- A facility already masked by a generation still writing (one whose writer died) keeps that older mask:
-- it is what readers saw last. Each masked facility is listed in stage:{gen}:m for the clean-up.
local prefix, gen = ARGV[1], ARGV[2]
local masks, mine, staging = KEYS[1], KEYS[2], KEYS[3]
local skip = #prefix + 3  -- a facility's id follows prefix .. 'c:' in its key
for i = 4, #KEYS do
  local id = string.sub(KEYS[i], skip)
  local cur = redis.call('HGET', masks, id)
  local keep = false
  if cur then
    local g = string.sub(cur, 1, string.find(cur, '\n', 1, true) - 1)
    keep = g == gen or redis.call('HGET', staging, g) == 'w'
  end
  if not keep then
    local v = redis.call('HMGET', KEYS[i], 't', 'j', 'm')
    local record = v[2] and composed_record(prefix, id, v[2])
    if record then
      redis.call('HSET', masks, id, gen .. '\n' .. (v[1] or '') .. '\n' .. read_doc(prefix, id, record, v[3]))
    else
      redis.call('HSET', masks, id, gen .. '\n')
    end
  end
  redis.call('SADD', mine, id)
end
return #KEYS - 3
