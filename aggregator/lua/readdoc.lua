-- Shared prelude: a facility's read document, composed as it is read (nothing of it is stored twice).
-- "[group, ...]\n{record}": one group per key holding observations, each linked feed record's (a:{record};
-- c:{facility} m lists the records) and the facility's own (a:{facility}: operators' phone reports), as JSON
-- (no newline in it); then the facility's composed record as stored (c:{facility} j: deflated, store.pack).
-- A group is [record id, field, observation, field, observation, ...]: an observation's stored form leaves out
-- what its key and field say (store.observation_json).
local function observation_groups(prefix, id, members)
  local groups = {{id, redis.call('HGETALL', prefix .. 'a:' .. id)}}
  for m in string.gmatch(members or '', '%S+') do
    if m ~= id then groups[#groups + 1] = {m, redis.call('HGETALL', prefix .. 'a:' .. m)} end
  end
  return groups
end
-- the level of care a field ("{level}|{source}") is about
local function level_of(field)
  return string.match(field, '^[^|]*')
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
