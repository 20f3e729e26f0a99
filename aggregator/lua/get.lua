-- One facility's read document as a reader may see it (visible.lua), or nil. A feed record's id answers
-- for the facility it is linked to.
-- ARGV  prefix, id
local prefix, id = ARGV[1], ARGV[2]
local state = stage_state(prefix)
local _, d = visible(prefix, state, id)
if d then return d end
local fac = redis.call('HGET', prefix .. 'r:' .. id, 'fac')
if fac and fac ~= id then
  _, d = visible(prefix, state, fac)
  return d
end
return nil
