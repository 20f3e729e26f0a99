-- Shared prelude (after readdoc.lua): what a reader may see of a facility while a large write is staged.
--
-- A write too large for one short transaction (Store.replace_feed, "staged") runs as a generation:
-- staging = { gen -> 'w' (writing) | 'c' (flipped, clean-up pending) }. Before it changes a facility it
-- keeps the facility's visible state in masks (fid -> "{gen}\n" .. ("{t}\n{read document}" when it existed)); while
-- the generation is 'w' readers see that. The flip (one HSET to 'c') makes every change visible at once.
-- Removals from the GEO and filter indexes wait for the clean-up; until then a facility that left the
-- main GEO index is listed in stage:{gen}:hide, and the reader checks filter and level tokens itself.
--
-- stage_state(prefix) -> nil when nothing is staged (the fast path), else {writing = {gen = true}, committed = {gen...}}
-- visible(prefix, state, id) -> t, d, masked: the facility's index tokens and read document as a reader may
-- see them (nil when it is not visible), and whether they came from a mask.
local function stage_state(prefix)
  local raw = redis.call('HGETALL', prefix .. 'staging')
  if #raw == 0 then return nil end
  local state = {writing = {}, committed = {}}
  for k = 1, #raw, 2 do
    if raw[k + 1] == 'w' then state.writing[raw[k]] = true else state.committed[#state.committed + 1] = raw[k] end
  end
  return state
end

local function visible(prefix, state, id)
  if state then
    local m = redis.call('HGET', prefix .. 'masks', id)
    if m then
      local nl = string.find(m, '\n', 1, true)
      if state.writing[string.sub(m, 1, nl - 1)] then
        local rest = string.sub(m, nl + 1)
        if rest == '' then return nil, nil, true end
        local nl2 = string.find(rest, '\n', 1, true)
        return string.sub(rest, 1, nl2 - 1), string.sub(rest, nl2 + 1), true
      end
    end
    for _, g in ipairs(state.committed) do
      if redis.call('SISMEMBER', prefix .. 'stage:' .. g .. ':hide', id) == 1 then return nil, nil, false end
    end
  end
  local v = redis.call('HMGET', prefix .. 'c:' .. id, 't', 'j', 'm')
  local record = v[2] and composed_record(prefix, id, v[2])
  if not record then return nil, nil, false end
  return v[1] or '', read_doc(prefix, id, record, v[3]), false
end
