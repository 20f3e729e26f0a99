-- Shared prelude: a facility's read document, composed as it is read (nothing of it is stored twice).
-- "[group, ...]\n{record}": one group per key holding observations, each linked feed record's (a:{record};
-- c:{facility} m lists the records) and the facility's own (a:{facility}: operators' phone reports), as JSON
-- (no newline in it); then the facility's composed record as stored (c:{facility} j: deflated, store.pack), or for
-- a facility composed from its founding record alone (j is the byte 2: store.COMPOSED_FROM_RECORD) that byte and
-- the record as stored (r:{facility} j), which the reader composes (facility.single).
-- A group is [record id, field, observation, field, observation, ...]: an observation's stored form leaves out
-- what its key and field say (store.observation_json).
-- a:{id} holds two things under one id: the feed figures of record {id} (fields "{level}|{pull|scrape|push}") and
-- operators' phone reports about facility {id} ("{level}|operator": store.record_observations writes them to the
-- facility's own key). While the record founds the facility they read as one; once the record is linked to
-- another facility, its figures go with it and the operators' reports stay (they are about this place) while
-- facility {id} lives on; when it is gone (merged into the one its record joined), they went with the place.
local OPERATOR = '|operator'
local function operators_only(kv, wanted)
  local out = {}
  for k = 1, #kv, 2 do
    if (string.sub(kv[k], -#OPERATOR) == OPERATOR) == wanted then
      out[#out + 1] = kv[k]
      out[#out + 1] = kv[k + 1]
    end
  end
  return out
end
local function observation_groups(prefix, id, members)
  local own = redis.call('HGETALL', prefix .. 'a:' .. id)
  -- no member list: the facility is its founding record alone (store.facility_members)
  if members and members ~= '' and not string.find(' ' .. members .. ' ', ' ' .. id .. ' ', 1, true) then
    own = operators_only(own, true)  -- the founding record has left: only the reports about this facility
  end
  local groups = {{id, own}}
  for m in string.gmatch(members or '', '%S+') do
    if m ~= id then  -- a record founded elsewhere: its own figures, and the reports about its old facility if gone
      local kv = redis.call('HGETALL', prefix .. 'a:' .. m)
      if redis.call('EXISTS', prefix .. 'c:' .. m) == 1 then kv = operators_only(kv, false) end
      groups[#groups + 1] = {m, kv}
    end
  end
  return groups
end
-- An observation's stored form (store.observation_json) as named fields: the positional form
-- [st, fs, rt, wo, ru, cu, ...] by SLOTS (store.SLOTS: the same list), absent ones null or left out at the end,
-- microseconds 0 when none, the status by its code (STATUSES); the compact object (the same short names) and the
-- long form kept before it as they are. Takes the stored text or its decoded JSON.
local SLOTS = {'st', 'fs', 'rt', 'wo', 'ru', 'cu', 'ba', 'bt', 'ch', 'chu', 'ct', 'ac', 'wl', 'ap', 'na', 'no', 'rb',
               'chi'}
local ZERO_IS_NONE = {ru = true, cu = true, chu = true}
-- a status is stored as its place in this list, from 0 (store.STATUS_CODES: the same list)
local STATUSES = {'available', 'limited', 'waitlist', 'full', 'assessment_required', 'closed', 'unknown'}
local STATUS_CODE = {}
for k, name in ipairs(STATUSES) do STATUS_CODE[name] = k - 1 end
local function observation(o)
  if type(o) == 'string' then o = cjson.decode(o) end
  if o[1] == nil then return o end
  local t = {}
  for k, name in ipairs(SLOTS) do
    local v = o[k]
    if v ~= nil and v ~= cjson.null and not (v == 0 and ZERO_IS_NONE[name]) then t[name] = v end
  end
  t.st = STATUSES[t.st + 1]
  return t
end
-- named fields (observation) in the positional form, as stored
local function observation_text(t)
  local parts, last = {}, 0
  for k, name in ipairs(SLOTS) do
    local v = t[name]
    if name == 'st' then v = STATUS_CODE[v] end
    if v ~= nil and v ~= cjson.null and not (v == 0 and ZERO_IS_NONE[name]) then
      parts[k] = cjson.encode(v)
      last = k
    end
  end
  for k = 1, last do
    if not parts[k] then parts[k] = ZERO_IS_NONE[SLOTS[k]] and '0' or 'null' end
  end
  return '[' .. table.concat(parts, ',', 1, last) .. ']'
end
-- the level of care a field ("{level}|{source}") is about
local function level_of(field)
  return string.match(field, '^[^|]*')
end
-- the composed record (c:{facility} j) as a read document carries it: for a facility composed from its founding
-- record, the byte 2 and that record; nil when that record is missing (a damaged store: the facility reads as absent)
local function composed_record(prefix, id, j)
  if j ~= '\2' then return j end
  local record = redis.call('HGET', prefix .. 'r:' .. id, 'j')
  if not record then return nil end
  return '\2' .. record
end
local function read_doc(prefix, id, record, members)
  local parts = {}
  for _, g in ipairs(observation_groups(prefix, id, members)) do
    local kv = g[2]
    if #kv > 0 then
      local s = {cjson.encode(g[1])}
      for k = 1, #kv, 2 do
        s[#s + 1] = cjson.encode(kv[k])  -- "{level}|{source}"
        s[#s + 1] = kv[k + 1]
      end
      parts[#parts + 1] = '[' .. table.concat(s, ',') .. ']'
    end
  end
  return '[' .. table.concat(parts, ',') .. ']\n' .. record
end
-- the observation groups of a read document, decoded; a document composed before records were packed
-- ([record, [observation, ...]], from a staged write's mask) gives its observations as one group
local function doc_groups(doc)
  if string.sub(doc, 2, 2) ~= '{' then
    return cjson.decode(string.sub(doc, 1, string.find(doc, '\n', 1, true) - 1))
  end
  local group = {''}
  for _, o in ipairs(cjson.decode(doc)[2]) do
    group[#group + 1] = o.level_of_care .. '|' .. o.source
    group[#group + 1] = o
  end
  return {group}
end
-- When the figure a reader shows for each level of care is an open one (available or limited), as spans of
-- epoch ms [from, to). A reader (lookup._levels) shows, per level, the figure reported last among those fresh at
-- the time (the first of equals, in document order); so an open figure is shown from when every figure reported
-- after it (or as late and before it) has gone stale, until it goes stale itself: a newer "full" from another
-- source (an operator's call) hides an older "available" for as long as it is fresh.
-- figures: a list of {field ("{level}|{source}"), observation (named: observation())}, in document order.
-- Returns level -> {{from, to}, ...}.
local function open_spans(figures)
  local by_level = {}
  for i, f in ipairs(figures) do
    local o = f[2]
    local level = level_of(f[1])
    local list = by_level[level]
    if not list then
      list = {}
      by_level[level] = list
    end
    local status = o.st or o.status  -- o.status: stored before the compact form
    list[#list + 1] = {rt = o.rt, to = o.rt + (o.fs or o.freshness_seconds) * 1000, i = i,
                       open = status == 'available' or status == 'limited'}
  end
  local spans = {}
  for level, list in pairs(by_level) do
    for _, a in ipairs(list) do
      if a.open then
        local from = 0
        for _, b in ipairs(list) do
          if (b.rt > a.rt or (b.rt == a.rt and b.i < a.i)) and b.to > from then from = b.to end
        end
        if from < a.to then
          spans[level] = spans[level] or {}
          table.insert(spans[level], {from, a.to})
        end
      end
    end
  end
  return spans
end
-- the figures of observation groups as observation_groups gives them ({record, {field, stored, ...}}), for
-- open_spans: a figure of the positional form read as far as open_spans reads it (status, window and report time:
-- its first three slots, by place; a facility is composed again whenever its figures change, so this is most of
-- what observe.lua costs), any other form whole (observation)
local function group_figures(groups)
  local figures = {}
  for _, g in ipairs(groups) do
    local kv = g[2]
    for k = 1, #kv, 2 do
      local text = kv[k + 1]
      local st, fs, rt = string.match(text, '^%[(%d+),(%d+),(%d+)[,%]]')
      if st then
        figures[#figures + 1] = {kv[k], {st = STATUSES[tonumber(st) + 1], fs = tonumber(fs), rt = tonumber(rt)}}
      else
        figures[#figures + 1] = {kv[k], observation(text)}
      end
    end
  end
  return figures
end
