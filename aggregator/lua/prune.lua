-- Drop a source's observations for levels a center no longer reports.
--
-- ARGV  prefix, source, then per center: center_id, n_levels, level...
-- Rebuilds the read document of every center it changed.
local prefix, source = ARGV[1], ARGV[2]
local removed = 0
local i = 3
while i <= #ARGV do
  local center = ARGV[i]
  local key = prefix .. 'a:' .. center
  local n = tonumber(ARGV[i + 1])
  local keep = {}
  for k = 1, n do keep[ARGV[i + 1 + k] .. '|' .. source] = true end
  i = i + 2 + n
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
