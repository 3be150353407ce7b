-- clock.lua is prepended to every quota script that reads the clock, so the
-- fleet has one clock: the Redis server's TIME, in microseconds, unless the
-- caller passes its own (tests inject a clock as ARGV[1]; "" means none).
local function clock_now(arg)
  if arg ~= '' then
    return tonumber(arg)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
