-- release.lua: KEYS[1] the feeder's lease; ARGV holder id. Drops the lease when
-- the caller holds it, so another worker takes over at its next tick. Returns 1
-- when dropped.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
