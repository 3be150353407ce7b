-- Decides which process of the fleet resyncs now.
--
-- KEYS[1]   periodic lock: one resync per interval for the fleet
-- KEYS[2]   urgent lock: one resync asked for by a 429 per gap for the fleet
-- KEYS[3]   "off" flag: the Remaining endpoint is unavailable, no resync meanwhile
-- ARGV[1]   "periodic" or "urgent"
-- ARGV[2]   interval, ms (TTL of the periodic lock)
-- ARGV[3]   urgent gap, ms (TTL of the urgent lock)
-- Returns 1 when the caller resyncs now, 0 otherwise.
if redis.call('EXISTS', KEYS[3]) == 1 then
  return 0
end
if ARGV[1] == 'urgent' then
  if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then
    -- the periodic one is due an interval after this one
    redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
    return 1
  end
  return 0
end
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
