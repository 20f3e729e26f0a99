-- Shared prelude (after readdoc.lua): what a facility's readers need kept beside its record when its
-- observations or links change. r:{record} fac names the facility a feed record is linked to; c:{facility} m
-- lists its records.
local function facility_of(prefix, id)
  local fac = redis.call('HGET', prefix .. 'r:' .. id, 'fac')
  if fac then return fac end
  return id
end
local function compose(prefix, id)
  local ckey = prefix .. 'c:' .. id
  local v = redis.call('HMGET', ckey, 'j', 'm')
  if not v[1] then return end
  local obs = observations_of(prefix, id, v[2])
  -- u: until when each level of care has a fresh open figure ("detox=1796536065781 residential=..."; '' when
  -- none): an available_only search reads this one field instead of decoding every observation (near.lua)
  local open = {}
  for _, o in ipairs(obs) do
    o = cjson.decode(o)
    if o.status == 'available' or o.status == 'limited' then
      local u = o.rt + o.freshness_seconds * 1000
      if not open[o.level_of_care] or u > open[o.level_of_care] then open[o.level_of_care] = u end
    end
  end
  local parts = {}
  for level, u in pairs(open) do parts[#parts + 1] = level .. '=' .. string.format('%.0f', u) end
  table.sort(parts)
  redis.call('HSET', ckey, 'u', table.concat(parts, ' '))
  redis.call('HDEL', ckey, 'd')  -- the read document a store written before readdoc.lua kept here
end
