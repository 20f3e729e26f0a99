-- The per-client rate check of the HTTP API's near-you search, in the search's own round trip (loaded in
-- front of near.lua): a client over its limit costs one INCR, never a search.
--
-- KEYS[1]  the client's counter (rate:{client}), then near.lua's KEYS
-- ARGV     window_ms, allowed requests per window, then near.lua's ARGV
-- Returns {'__limited__', ms until the window ends} over the limit (no center id starts with '_');
-- otherwise near.lua's reply.
-- The INCR makes the search a writing script, which SCRIPT KILL cannot stop: the search's work is bounded
-- (near.lua examines at most max_examined candidates) so that it never needs to be.
local rate_key = table.remove(KEYS, 1)
local window_ms = table.remove(ARGV, 1)
local allowed = tonumber(table.remove(ARGV, 1))
local requests = redis.call('INCR', rate_key)
if requests == 1 then redis.call('PEXPIRE', rate_key, window_ms) end
if requests > allowed then
  return {'__limited__', redis.call('PTTL', rate_key)}
end
