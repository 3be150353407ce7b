-- Stores policies learned from 429s (X-RateLimit-ViolatedPolicy) for the whole
-- fleet, keeping the stricter capacity when one is already known.
--
-- KEYS[1]   learned-policies hash: field "kind:period" = capacity
-- ARGV[1]   TTL of the hash, ms
-- ARGV[2i], ARGV[2i+1]  field and capacity of learned policy i
-- Returns the fields that changed.
local changed = {}
for i = 2, #ARGV, 2 do
  local f = ARGV[i]
  local c = tonumber(ARGV[i + 1])
  local cur = redis.call('HGET', KEYS[1], f)
  if (not cur) or c < tonumber(cur) then
    redis.call('HSET', KEYS[1], f, ARGV[i + 1])
    changed[#changed + 1] = f
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return changed
