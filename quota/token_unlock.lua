-- Releases the refresh lock only if this process still owns it.
-- KEYS[1] lock key, ARGV[1] the owner value written by SET NX.
-- Returns 1 when released, 0 when the lock expired or belongs to someone else.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
