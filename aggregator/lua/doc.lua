-- Shared prelude: a center's read document, kept beside its record so a search reads one field.
-- c:{id} d = [record, [observation, ...]]
local function compose(prefix, id)
  local ckey = prefix .. 'c:' .. id
  local rec = redis.call('HGET', ckey, 'j')
  if not rec then return end
  local obs = redis.call('HVALS', prefix .. 'a:' .. id)
  redis.call('HSET', ckey, 'd', '[' .. rec .. ',[' .. table.concat(obs, ',') .. ']]')
end
