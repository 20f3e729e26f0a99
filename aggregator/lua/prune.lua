-- Drop a source's observations for levels a center no longer reports.
--
-- KEYS  a:{center_id} of each center, in order
-- ARGV  prefix, source, then per center: n_levels, level...
-- Rebuilds the read document of every center it changed.
local prefix, source = ARGV[1], ARGV[2]
local skip = #prefix + 3  -- a center's id follows prefix .. 'a:' in its key
local removed = 0
local i = 3
for _, key in ipairs(KEYS) do
  local center = string.sub(key, skip)
  local n = tonumber(ARGV[i])
  local keep = {}
  for k = 1, n do keep[ARGV[i + k] .. '|' .. source] = true end
  i = i + 1 + n
  local suffix = '|' .. source
  local dropped = false
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if string.sub(field, -#suffix) == suffix and not keep[field] then
      redis.call('HDEL', key, field)
      removed = removed + 1
      dropped = true
    end
  end
  if dropped then compose(prefix, facility_of(prefix, center)) end
end
return removed
