-- Shared prelude: a facility's read document, composed as it is read (nothing of it is stored twice).
-- [record, [observation, ...]]: the facility's composed record (c:{facility} j), then the observations of every
-- linked feed record (a:{record}; c:{facility} m lists the records) and the facility's own (a:{facility}:
-- operators' phone reports).
local function observations_of(prefix, id, members)
  local obs = redis.call('HVALS', prefix .. 'a:' .. id)
  for m in string.gmatch(members or '', '%S+') do
    if m ~= id then
      for _, v in ipairs(redis.call('HVALS', prefix .. 'a:' .. m)) do obs[#obs + 1] = v end
    end
  end
  return obs
end
local function read_doc(prefix, id, record, members)
  return '[' .. record .. ',[' .. table.concat(observations_of(prefix, id, members), ',') .. ']]'
end
