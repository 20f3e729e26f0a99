-- Rebuild the read documents of the given facilities (after their records or links changed).
-- KEYS  c:{facility_id}...
-- ARGV  prefix
local skip = #ARGV[1] + 3  -- a facility's id follows prefix .. 'c:' in its key
for _, key in ipairs(KEYS) do compose(ARGV[1], string.sub(key, skip)) end
return #KEYS
