-- Shared prelude: a facility's read document, kept beside its record so a search reads one field.
-- c:{facility} d = [record, [observation, ...]]: the composed record, then the observations of every
-- linked feed record (a:{record}) and the facility's own (a:{facility}: operators' phone reports).
-- r:{record} fac names the facility a feed record is linked to; c:{facility} m lists its records.
local function facility_of(prefix, id)
  local fac = redis.call('HGET', prefix .. 'r:' .. id, 'fac')
  if fac then return fac end
  return id
end
local function compose(prefix, id)
  local ckey = prefix .. 'c:' .. id
  local rec = redis.call('HGET', ckey, 'j')
  if not rec then return end
  local obs = redis.call('HVALS', prefix .. 'a:' .. id)
  local members = redis.call('HGET', ckey, 'm') or ''
  for m in string.gmatch(members, '%S+') do
    if m ~= id then
      for _, v in ipairs(redis.call('HVALS', prefix .. 'a:' .. m)) do obs[#obs + 1] = v end
    end
  end
  -- u: until when each level of care has a fresh open figure ("detox=1796536065781 residential=..."; '' when
  -- none): an available_only search reads this one field instead of decoding every observation (near.lua)
  local open = {}
  for _, v in ipairs(obs) do
    local o = cjson.decode(v)
    if o.status == 'available' or o.status == 'limited' then
      local u = o.rt + o.freshness_seconds * 1000
      if not open[o.level_of_care] or u > open[o.level_of_care] then open[o.level_of_care] = u end
    end
  end
  local parts = {}
  for level, u in pairs(open) do parts[#parts + 1] = level .. '=' .. string.format('%.0f', u) end
  table.sort(parts)
  redis.call('HSET', ckey, 'd', '[' .. rec .. ',[' .. table.concat(obs, ',') .. ']]', 'u', table.concat(parts, ' '))
end
