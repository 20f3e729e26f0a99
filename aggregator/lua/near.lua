-- Nearest facilities that pass the filters, with their read documents, in one round trip.
--
-- KEYS     GEO indexes to search: the main one, or one per requested level of care (geo:loc:{level},
--          which hold only centers offering that level: the most selective filter costs nothing)
-- ARGV     prefix, lon, lat, radius_mi, limit, now_ms, available_only (0|1), first_radius_mi,
--          n_groups, then per group: n_tokens, token..., then n_levels, level..., then max_examined
--
-- Bounded work: at most max_examined candidates are examined. When a filter group's index sets
-- (ix:{token}) hold no more than that many centers in all, the answer comes from those sets (each
-- member's position against the radius, then nearest first): exact, and cheap however dense the area.
-- Otherwise the GEO search stops after max_examined candidates, and the reply ends with the marker
-- '__stopped__' (the caller says the search stopped early).
--
-- Searches outward (first_radius, then wider by what the density found says is needed, 1.5x to 4x, up to
-- radius) and asks GEOSEARCH only for as many nearest candidates as it needs, so the nearest ten in a dense
-- metro cost a small search, not a scan of every center within 25 miles. Several indexes are merged by
-- distance, taking only what is certainly nearest-first. Members without a record (ghosts) are skipped.
-- While a large write is staged, candidates are seen as visible.lua says (the prelude this script is
-- loaded with): the facility as it was until the write's flip.
-- Returns a flat list: id, distance_mi, document (its observation groups, a newline, its record: readdoc.lua), ...
local prefix = ARGV[1]
local lon, lat = ARGV[2], ARGV[3]
local radius = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
local now = tonumber(ARGV[6])
local available_only = ARGV[7] == '1'
local r = math.min(tonumber(ARGV[8]), radius)

-- a padded token (' pay:medicaid ') and its code as a facility's t keeps it (' l ': store.token_code; t written
-- before codes holds the token itself)
local function forms_of(token)
  local code = token_code(token)
  if code == token then return {' ' .. token .. ' '} end
  return {' ' .. code .. ' ', ' ' .. token .. ' '}
end

local i = 10
local groups, wanted = {}, {}
for g = 1, tonumber(ARGV[9]) do
  local n = tonumber(ARGV[i]); i = i + 1
  local tokens, forms = {}, {}
  for k = 1, n do
    tokens[k] = ' ' .. ARGV[i] .. ' '
    for _, form in ipairs(forms_of(ARGV[i])) do forms[#forms + 1] = form end
    i = i + 1
  end
  groups[g], wanted[g] = tokens, forms
end
local levels = nil
local n_levels = tonumber(ARGV[i]); i = i + 1
if n_levels > 0 then
  levels = {}
  for k = 1, n_levels do levels[ARGV[i]] = true; i = i + 1 end
end
local max_examined = tonumber(ARGV[i])

-- does the padded token list (' loc:detox pay:medicaid ') hold one of these padded tokens?
local function has_any(padded, tokens)
  for _, token in ipairs(tokens) do
    if string.find(padded, token, 1, true) then return true end
  end
  return false
end

-- a facility's index tokens (c:{id} field t, e.g. "loc:detox pay:medicaid") against every filter group
local function passes_filters(t)
  if #groups == 0 then return true end
  t = ' ' .. t .. ' '
  for g = 1, #groups do
    if not has_any(t, wanted[g]) then return false end
  end
  return true
end

-- is the figure a reader shows open now, at one of the requested levels (any level when none is)? (open_spans)
local function shows_open(figures)
  for level, spans in pairs(open_spans(figures)) do
    if levels == nil or levels[level] then
      for _, s in ipairs(spans) do
        if s[1] <= now and s[2] > now then return true end
      end
    end
  end
  return false
end

-- does one of these spans ("to,from:to,..." of doc.lua's s field) hold now? (a level's name holds no digits, so a
-- facility's whole s field reads as its spans at any level)
local function span_now(spans)
  for from, colon, to in string.gmatch(spans, '(%d+)(:?)(%d*)') do
    if colon == '' then
      if tonumber(from) > now then return true end  -- "to" alone: open from the start
    elseif tonumber(from) <= now and tonumber(to) > now then
      return true
    end
  end
  return false
end

-- the same from a facility's s field, as doc.lua composed it: "level=to,from:to ..." (spans of open figures shown)
local function open_until_now(u)
  if levels == nil then return span_now(u) end
  for level, spans in string.gmatch(u, '(%S+)=(%S+)') do
    if levels[level] and span_now(spans) then return true end
  end
  return false
end

-- a facility's observations live with each of its linked records (a:{record}) and its own (a:{facility});
-- one composed before the 's' field existed (its u said only until when any open figure was fresh) is judged
-- from them (s and m: the facility's fields, as take() read them)
local function facility_open_now(id, s, m)
  if s then return open_until_now(s) end
  return shows_open(group_figures(observation_groups(prefix, id, m or nil)))
end

-- a masked facility (visible.lua): the document readers may see is checked whole (its groups: readdoc.lua)
local function doc_open_now(doc)
  local figures = {}
  for _, g in ipairs(doc_groups(doc)) do
    for k = 3, #g, 2 do figures[#figures + 1] = {g[k - 1], observation(g[k])} end
  end
  return shows_open(figures)
end

local state = stage_state(prefix)
-- a level's GEO index may still hold a facility that no longer offers it, until a staged write's clean-up
local level_tokens = nil
if state and levels and KEYS[1] ~= prefix .. 'geo' then
  level_tokens = {}
  for level in pairs(levels) do
    for _, form in ipairs(forms_of('loc:' .. level)) do level_tokens[#level_tokens + 1] = form end
  end
end

local function by_distance(a, b) return tonumber(a[2]) < tonumber(b[2]) end

local out = {}
local found = 0

-- the fields take() reads of a facility (c:{id}) on the usual path, in one HMGET: its composed record and members,
-- then its index tokens when there are filters, its open spans when only open ones are wanted
local fields, T, S = {'j', 'm'}, nil, nil
if #groups > 0 then fields[#fields + 1] = 't'; T = #fields end
if available_only then fields[#fields + 1] = 's'; S = #fields end

-- a candidate that passes every filter and is open (when asked) joins the answer; true when it is full
local function take(id, dist)
  local doc
  if state then  -- a large write is staged: what readers may see (visible.lua)
    local t, masked
    t, doc, masked = visible(prefix, state, id)
    if not doc or not passes_filters(t) then return false end
    if level_tokens and not has_any(' ' .. t .. ' ', level_tokens) then return false end
    if available_only then
      if masked then
        if not doc_open_now(doc) then return false end
      else
        local v = redis.call('HMGET', prefix .. 'c:' .. id, 's', 'm')
        if not facility_open_now(id, v[1], v[2]) then return false end
      end
    end
  else  -- the usual path: one read of the facility's fields; the document only for one that passes
    local v = redis.call('HMGET', prefix .. 'c:' .. id, unpack(fields))
    if not v[1] then return false end  -- a ghost: no record
    if T and not (v[T] and passes_filters(v[T])) then return false end
    if S and not facility_open_now(id, v[S], v[2]) then return false end
    local record = composed_record(prefix, id, v[1])
    if not record then return false end
    doc = read_doc(prefix, id, record, v[2])
  end
  out[#out + 1] = id
  out[#out + 1] = dist
  out[#out + 1] = doc
  found = found + 1
  return found >= limit
end

-- the selective path: the smallest filter group's index sets, when small enough
if #groups > 0 then
  local best, best_size = nil, nil
  for g = 1, #groups do
    local size = 0
    for _, token in ipairs(groups[g]) do
      size = size + redis.call('SCARD', prefix .. 'ix:' .. string.sub(token, 2, -2))
    end
    if best_size == nil or size < best_size then best, best_size = g, size end
  end
  if best_size <= max_examined then
    -- Redis's own haversine (geohelper.c), so distances agree with GEOSEARCH
    local R, rad = 6372797.560856, math.pi / 180
    local lat1, lon1 = tonumber(lat) * rad, tonumber(lon) * rad
    local candidates, seen = {}, {}
    for _, token in ipairs(groups[best]) do
      for _, id in ipairs(redis.call('SMEMBERS', prefix .. 'ix:' .. string.sub(token, 2, -2))) do
        if not seen[id] then
          seen[id] = true
          for _, key in ipairs(KEYS) do
            local pos = redis.call('GEOPOS', key, id)[1]
            if pos then
              local lat2, lon2 = tonumber(pos[2]) * rad, tonumber(pos[1]) * rad
              local u, v = math.sin((lat2 - lat1) / 2), math.sin((lon2 - lon1) / 2)
              local metres = 2 * R * math.asin(math.sqrt(u * u + math.cos(lat1) * math.cos(lat2) * v * v))
              local miles = metres / 1609.34
              if miles <= radius then candidates[#candidates + 1] = {id, string.format('%.4f', miles)} end
              break
            end
          end
        end
      end
    end
    table.sort(candidates, by_distance)
    for _, item in ipairs(candidates) do
      if take(item[1], item[2]) then return out end
    end
    return out
  end
end

-- the GEO path: nearest first, searching outward, at most max_examined candidates
local seen = {}
local examined = 0
local want = limit
if #groups > 0 or available_only then want = limit * 4 end
want = math.min(want, max_examined)
while true do
  local batch = {}
  local cutoff = nil  -- beyond the last distance of a truncated index, order is not yet known
  for _, key in ipairs(KEYS) do
    local res = redis.call('GEOSEARCH', key, 'FROMLONLAT', lon, lat, 'BYRADIUS', r, 'mi', 'ASC',
                           'COUNT', want, 'WITHDIST')
    if #res >= want then
      local last = tonumber(res[#res][2])
      if cutoff == nil or last < cutoff then cutoff = last end
    end
    for _, item in ipairs(res) do batch[#batch + 1] = item end
  end
  if #KEYS > 1 then table.sort(batch, by_distance) end
  for _, item in ipairs(batch) do
    local id = item[1]
    if cutoff ~= nil and tonumber(item[2]) > cutoff then break end
    if not seen[id] then
      seen[id] = true
      examined = examined + 1
      if take(id, item[2]) then return out end
      if examined >= max_examined then
        out[#out + 1] = '__stopped__'
        return out
      end
    end
  end
  if cutoff ~= nil then
    if want >= max_examined then
      out[#out + 1] = '__stopped__'
      return out
    end
    want = math.min(want * 4, max_examined)
  elseif r >= radius then
    return out
  else
    -- every candidate within r is examined now (the distinct ones: a center in two level indexes counts once):
    -- the next radius from the density found and the share that passed, with a margin, between 1.5x and 4x
    -- (4x when there was no candidate within r)
    local grow = 4
    if examined > 0 then
      local rate = math.max(found, 1) / examined
      local needed = examined + (limit - found) / rate
      grow = math.min(4, math.max(1.5, 1.3 * math.sqrt(needed / examined)))
    end
    r = math.min(r * grow, radius)
  end
end
