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
  -- s: when each level of care shows a fresh open figure (open_spans), as "detox=1796536065781 residential=..."
  -- (until then) or, where a newer figure hides it until that one goes stale, "from:to"; several spans of a level
  -- after commas; '' when none. An available_only search reads this one field instead of decoding every
  -- observation (near.lua). It replaces u (until when each level had any fresh open figure, hidden or not: a
  -- facility composed before keeps u, and near.lua judges it from its figures until it is composed again).
  local parts = {}
  for level, spans in pairs(open_spans(group_figures(observation_groups(prefix, id, v[2])))) do
    local texts = {}
    for _, s in ipairs(spans) do
      if s[1] == 0 then
        texts[#texts + 1] = string.format('%.0f', s[2])
      else
        texts[#texts + 1] = string.format('%.0f:%.0f', s[1], s[2])
      end
    end
    parts[#parts + 1] = level .. '=' .. table.concat(texts, ',')
  end
  table.sort(parts)
  redis.call('HSET', ckey, 's', table.concat(parts, ' '))
  redis.call('HDEL', ckey, 'u', 'd')  -- u: see above; d: the read document a store written before readdoc.lua kept
end
