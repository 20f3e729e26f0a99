-- Keep the visible state of facilities a staged write is about to change (see visible.lua).
-- ARGV  prefix, gen, facility_id...
-- A facility already masked by a generation still writing (one whose writer died) keeps that older mask:
-- it is what readers saw last. Each masked facility is listed in stage:{gen}:m for the clean-up.
local prefix, gen = ARGV[1], ARGV[2]
local masks = prefix .. 'masks'
local mine = prefix .. 'stage:' .. gen .. ':m'
for i = 3, #ARGV do
  local id = ARGV[i]
  local cur = redis.call('HGET', masks, id)
  local keep = false
  if cur then
    local g = string.sub(cur, 1, string.find(cur, '\n', 1, true) - 1)
    keep = g == gen or redis.call('HGET', prefix .. 'staging', g) == 'w'
  end
  if not keep then
    local v = redis.call('HMGET', prefix .. 'c:' .. id, 't', 'd')
    if v[2] then
      redis.call('HSET', masks, id, gen .. '\n' .. (v[1] or '') .. '\n' .. v[2])
    else
      redis.call('HSET', masks, id, gen .. '\n')
    end
  end
  redis.call('SADD', mine, id)
end
return #ARGV - 2
