-- Upsert availability observations; an older report never overwrites a newer one.
--
-- KEYS  a:{center_id} of each observation, in order
-- ARGV  prefix, order, mode, then per observation: field ("{level}|{source}"), its stored form
--       (store.observation_json; stored in the positional form whatever form it came in: readdoc.lua,
--       observation_text)
-- Each carries rt (reported_at, epoch milliseconds: exact in Lua's doubles; ru the microseconds left over). Its
-- changed time moves only when the figures change (compared one by one; the release before compared a digest,
-- sig, which observations it stored still carry): ch (and chu) when it differs
-- from rt (and ru), chi (ISO text) when carried from an observation stored before the compact form. order (epoch
-- ms: a push's acceptance, a run's start) breaks a tie of equal report times: of two pushes stamped the same
-- second, the one accepted later wins, whichever is applied last. It is kept with the observation as wo; ct
-- (checked_at, ms) is left out when it is the same (readers take wo).
-- mode 'own': the write's figures replace those stored in the same field whatever their report times (a feed
-- read under changed settings, such as a corrected time zone, replaces its own figures: newest-wins guards against
-- an older export, not against the feed's own correction); an unchanged figure then keeps its changed time only
-- where that is not after the new report. '' is newest-wins.
-- Rebuilds the read document of every facility it wrote to. Returns {written, stale}.
-- an observation's figures (what its changed time follows), by stored name: the long name of the form kept before
local FIGURES = {st = 'status', ba = 'beds_available', bt = 'beds_total', ac = 'accepting', wl = 'waitlist_size',
                 no = 'notes', ap = 'appointments_available', na = 'next_appointment_at'}
-- a figure of an observation in either form, nil at its default (the compact form leaves defaults out)
local function figure(o, short)
  local v = o[short]
  if v == nil and o.st == nil then v = o[FIGURES[short]] end
  if v == cjson.null or (short == 'no' and v == '') then return nil end
  return v
end
local function same_figures(a, b)
  for short in pairs(FIGURES) do
    if figure(a, short) ~= figure(b, short) then return false end
  end
  return true
end
local prefix = ARGV[1]
local order = tonumber(ARGV[2])
local own = ARGV[3] == 'own'
local written, stale = 0, 0
local touched = {}
local facilities_own = {}
local skip = #prefix + 3  -- a center's id follows prefix .. 'a:' in its key
for i, key in ipairs(KEYS) do
  local field = ARGV[2 * i + 2]
  local text = ARGV[2 * i + 3]
  local cur = redis.call('HGET', key, field)
  local apply = true
  local new = nil
  local ch, chu = nil, nil  -- when the figures last changed, when that was before this report
  -- the level's first figure of this source, in the positional form carrying this write's order as wo
  -- (store.observation_json with the order): stored as it comes; else read, and written as observation_text makes it
  if cur or string.match(text, '^%[%d+,%d+,%d+,(%d+)[,%]]') ~= ARGV[2] then
    new = observation(text)
    new.wo = order
    if new.ct == order then new.ct = nil end  -- checked as it was written (a run's start: most figures): ct is wo
  end
  if cur then
    local old = observation(cur)
    if not own and (new.rt < old.rt or (new.rt == old.rt and old.wo and old.wo ~= cjson.null and order < old.wo)) then
      apply = false
    elseif same_figures(new, old) then  -- the same figures: they changed when the old ones did
      if old.st == nil then  -- stored before the compact form: its changed_at is ISO text
        if old.changed_at and old.changed_at ~= cjson.null and not own then new.chi = old.changed_at end
      elseif old.chi then
        if not own then new.chi = old.chi end
      elseif old.ch then
        ch, chu = old.ch, old.chu
      else
        ch, chu = old.rt, old.ru
      end
      -- own mode: a changed time after the new report was stamped by the settings replaced (the wrong time zone);
      -- the figures then changed as of this report (an ISO changed time, from before the compact form, likewise)
      if own and ch and (ch > new.rt or (ch == new.rt and (chu or 0) > (new.ru or 0))) then ch, chu = nil, nil end
    end
  end
  if apply then
    if new then
      if ch and (ch ~= new.rt or chu ~= new.ru) then new.ch, new.chu = ch, chu end
      text = observation_text(new)
    end
    redis.call('HSET', key, field, text)
    written = written + 1
    local id = string.sub(key, skip)
    if string.sub(field, -9) == '|operator' then  -- an operator's report is about the facility of that id
      facilities_own[id] = true
    else  -- a feed's figure, about its record's facility
      touched[id] = true
    end
  else
    stale = stale + 1
  end
end
local facilities = facilities_own
for id in pairs(touched) do facilities[facility_of(prefix, id)] = true end
for id in pairs(facilities) do compose(prefix, id) end
return {written, stale}
