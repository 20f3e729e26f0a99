-- Count one request in a fixed window (the per-client rate limit of the HTTP API).
--
-- KEYS[1]  the client's counter (rate:{client})
-- ARGV     window_ms
-- Returns {requests in the window so far, ms until the window ends}.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
