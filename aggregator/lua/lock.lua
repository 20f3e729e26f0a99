-- Take a lock, or extend it when its token is already ours (a lease renewed, a redelivered job's own lock).
--
-- KEYS[1]  the lock (lock:{name})
-- ARGV     token, ttl_ms
-- Returns 1 when the lock is ours for ttl_ms from now, else 0.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
