-- Settlement and cancellation of a reservation: move policy TATs by the given
-- deltas (negative = credit) and book the month's ledger, atomically.
--
-- KEYS[1]   ledger of the reservation's month: actual milli-PU spent
-- KEYS[2]   pending milli-PU of that month
-- KEYS[3..] policy TAT keys
-- ARGV[1]   now in us, or "" for the Redis server's TIME
-- ARGV[2]   change of pending (negative: the reservation's estimate leaves it)
-- ARGV[3]   actual milli-PU to add to the ledger (0 for a cancellation)
-- ARGV[4]   TTL of the ledger, ms
-- ARGV[4+i] TAT delta of policy i, us
-- Returns the month's spent milli-PU.
local now = clock_now(ARGV[1]) -- clock.lua
for i = 3, #KEYS do
  local delta = tonumber(ARGV[2 + i])
  if delta ~= 0 then
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if delta > 0 then
      -- extra units are charged now, when the server reported them
      if tat < now then tat = now end
      tat = tat + delta
    else
      tat = tat + delta
    end
    if tat <= now then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
    end
  end
end
local dp = tonumber(ARGV[2])
if dp ~= 0 then
  local p = redis.call('INCRBY', KEYS[2], dp)
  if p <= 0 then redis.call('DEL', KEYS[2]) end
end
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local add = tonumber(ARGV[3])
if add ~= 0 then
  spent = redis.call('INCRBY', KEYS[1], add)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return spent
