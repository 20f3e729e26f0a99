-- After a staged write's flip: apply up to n of its deferred index removals, or drop up to n of its masks.
-- ARGV  prefix, gen, n, what ('rm' | 'm')
-- 'rm': stage:{gen}:rm holds "{key}\t{facility}" (key without prefix: ix:{token}, geo, geo:loc:{level}).
-- Each is checked against the facility as it is now, so a clean-up resumed late never removes what a
-- later write put back: a filter index keeps a facility whose tokens (t) name it; a GEO index keeps a
-- located, not inactive facility (p = '1'), and a level's index one offering that level.
-- 'm': stage:{gen}:m lists the masked facilities; a mask is dropped only if it is still this generation's.
-- Returns how many are left.
local prefix, gen, n, what = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local list = prefix .. 'stage:' .. gen .. ':' .. what
local items = redis.call('SPOP', list, n)
-- does t (store.token_code: tokens coded, or as they are where written before codes) hold the token?
local function has(t, token)
  if not t then return false end
  t = ' ' .. t .. ' '
  return string.find(t, ' ' .. token_code(token) .. ' ', 1, true) ~= nil
      or string.find(t, ' ' .. token .. ' ', 1, true) ~= nil
end
for _, item in ipairs(items) do
  if what == 'm' then
    local cur = redis.call('HGET', prefix .. 'masks', item)
    if cur and string.sub(cur, 1, string.find(cur, '\n', 1, true) - 1) == gen then
      redis.call('HDEL', prefix .. 'masks', item)
    end
  else
    local sep = string.find(item, '\t', 1, true)
    local key, id = string.sub(item, 1, sep - 1), string.sub(item, sep + 1)
    local c = prefix .. 'c:' .. id
    local t = redis.call('HGET', c, 't')
    if string.sub(key, 1, 3) == 'ix:' then
      if not has(t, string.sub(key, 4)) then redis.call('SREM', prefix .. key, id) end
    else
      local v = redis.call('HMGET', c, 'p', 'j')
      local want = v[1] == '1'
      if not v[1] and v[2] and string.sub(v[2], 1, 1) == '{' then  -- composed before p was kept: its plain JSON
        local rec = cjson.decode(v[2])
        want = rec.latitude ~= cjson.null and rec.longitude ~= cjson.null and rec.status ~= 'inactive'
      end
      if want and key ~= 'geo' then want = has(t, 'loc:' .. string.sub(key, 9)) end
      if not want then redis.call('ZREM', prefix .. key, id) end
    end
  end
end
return redis.call('SCARD', list)
