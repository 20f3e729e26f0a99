-- Release a lock only if it is still ours (one that expired and was taken by another run stays).
--
-- KEYS[1]  the lock (lock:{name})
-- ARGV     token
-- Returns 1 when released, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
