-- Nearest centers that pass the filters, with their records and availability, in one round trip.
--
-- KEYS[1]  the GEO index
-- ARGV     prefix, lon, lat, radius_mi, limit, now_ms, available_only (0|1), first_radius_mi,
--          n_groups, then per group: n_tokens, token..., then n_levels, level...
--
-- Searches outward (first_radius, x4, ... up to radius) and asks GEOSEARCH only for as many
-- nearest candidates as it needs, so the nearest ten in a dense metro cost a small search, not a
-- scan of every center within 25 miles. Members without a record (ghosts) are skipped.
-- Returns a flat list: id, distance_mi, document ([record, [observation, ...]]), ...
local prefix = ARGV[1]
local lon, lat = ARGV[2], ARGV[3]
local radius = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
local now = tonumber(ARGV[6])
local available_only = ARGV[7] == '1'
local r = math.min(tonumber(ARGV[8]), radius)

local i = 10
local groups = {}
for g = 1, tonumber(ARGV[9]) do
  local n = tonumber(ARGV[i]); i = i + 1
  local keys = {}
  for k = 1, n do keys[k] = prefix .. 'ix:' .. ARGV[i]; i = i + 1 end
  groups[g] = keys
end
local levels = nil
local n_levels = tonumber(ARGV[i]); i = i + 1
if n_levels > 0 then
  levels = {}
  for k = 1, n_levels do levels[ARGV[i]] = true; i = i + 1 end
end

local function passes_filters(id)
  for g = 1, #groups do
    local ok = false
    for _, key in ipairs(groups[g]) do
      if redis.call('SISMEMBER', key, id) == 1 then ok = true; break end
    end
    if not ok then return false end
  end
  return true
end

local function open_now(avail)
  for k = 2, #avail, 2 do
    local o = cjson.decode(avail[k])
    if (levels == nil or levels[o.level_of_care]) and (o.status == 'available' or o.status == 'limited')
        and o.rt + o.freshness_seconds * 1000 > now then
      return true
    end
  end
  return false
end

local out = {}
local found = 0
local seen = {}
local want = limit
if #groups > 0 or available_only then want = limit * 4 end
while true do
  local res = redis.call('GEOSEARCH', KEYS[1], 'FROMLONLAT', lon, lat, 'BYRADIUS', r, 'mi',
                         'ASC', 'COUNT', want, 'WITHDIST')
  for _, item in ipairs(res) do
    local id = item[1]
    if not seen[id] then
      seen[id] = true
      if passes_filters(id) then
        local doc = redis.call('HGET', prefix .. 'c:' .. id, 'd')
        if doc and ((not available_only) or open_now(redis.call('HGETALL', prefix .. 'a:' .. id))) then
          out[#out + 1] = id
          out[#out + 1] = item[2]
          out[#out + 1] = doc
          found = found + 1
          if found >= limit then return out end
        end
      end
    end
  end
  if #res >= want then
    want = want * 4
  elseif r >= radius then
    return out
  else
    r = math.min(r * 4, radius)
  end
end
