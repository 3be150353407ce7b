-- lease.lua: KEYS[1] the feeder's lease; ARGV holder id, TTL in ms.
-- Takes the lease when nobody holds it, renews it when the caller holds it.
-- Returns 1 when the caller holds the lease for the next TTL, else 0.
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
