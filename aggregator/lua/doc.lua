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
  -- u: until when each level of care has a fresh open figure ("detox=1796536065781 residential=..."; '' when
  -- none): an available_only search reads this one field instead of decoding every observation (near.lua)
  local open = {}
  for _, g in ipairs(observation_groups(prefix, id, v[2])) do
    local kv = g[2]
    for k = 1, #kv, 2 do
      local o = observation(kv[k + 1])
      local status = o.st or o.status  -- o.status: stored before the compact form
      if status == 'available' or status == 'limited' then
        local level = level_of(kv[k])
        local u = o.rt + (o.fs or o.freshness_seconds) * 1000
        if not open[level] or u > open[level] then open[level] = u end
      end
    end
  end
  local parts = {}
  for level, u in pairs(open) do parts[#parts + 1] = level .. '=' .. string.format('%.0f', u) end
  table.sort(parts)
  redis.call('HSET', ckey, 'u', table.concat(parts, ' '))
  redis.call('HDEL', ckey, 'd')  -- the read document a store written before readdoc.lua kept here
end
