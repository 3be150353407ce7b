-- Admission for one request against every policy of an account, atomically:
-- either every policy is charged or none is (GCRA, "theoretical arrival time").
--
-- KEYS[1]   backoff hash: field "until" = fleet-wide "not before" (us), "streak"
-- KEYS[2]   month-exhausted flag (set by Observe403)
-- KEYS[3]   ledger of the month: settled (actual) milli-PU spent
-- KEYS[4]   pending milli-PU of the month (reserved, not settled)
-- KEYS[5..] one TAT key per policy (value: theoretical arrival time, us)
-- KEYS[#KEYS-1] the fleet's cached contract hash (field month_cap: the account's
--           monthly PU policy capacity, PU)
-- KEYS[#KEYS] the fleet's queue shift (us, cumulative; see resync.lua): returned so
--           a waiter can tell how far the booked queue moved while it slept
-- ARGV[1]   now in us, or "" to use the Redis server's TIME (fleet-consistent clock)
-- ARGV[2]   the furthest ahead a slot may be booked, us
-- ARGV[3]   monthly budget, milli-PU (0 = none)
-- ARGV[4]   this request's PU estimate, milli-PU
-- ARGV[5]   TTL of the pending key, ms
-- ARGV[4+2i], ARGV[5+2i]  policy i: increment (us) and burst tolerance (us)
-- ARGV[#ARGV] "1" when the contract's month_cap also bounds the budget (the
--           policies come from the account), "0" otherwise
--
-- Returns {code, now, x, y, backoff}:
--   code 0 admitted: x = slot (us), 6th value = the queue shift now (us)
--   code 1 too far: x = earliest slot (us)
--   code 2 budget: x = spent, y = pending, 6th value = the budget (milli-PU)
--   code 3 month flagged exhausted
--   backoff = 1 when a 429 streak is recorded.
local now = clock_now(ARGV[1]) -- clock.lua
local streak = redis.call('HEXISTS', KEYS[1], 'streak')
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {3, now, 0, 0, streak}
end
local need = tonumber(ARGV[4])
local budget = tonumber(ARGV[3])
if ARGV[#ARGV] == '1' then
  -- Read fresh: a plan raised a moment ago (contract re-fetched) counts at once.
  local cap = tonumber(redis.call('HGET', KEYS[#KEYS - 1], 'month_cap') or '0')
  if cap and cap > 0 then
    cap = math.floor(cap * 1000 + 0.5)
    if budget == 0 or cap < budget then budget = cap end
  end
end
if budget > 0 then
  local spent = tonumber(redis.call('GET', KEYS[3]) or '0')
  local pending = tonumber(redis.call('GET', KEYS[4]) or '0')
  if pending < 0 then pending = 0 end
  if spent + pending + need > budget then
    return {2, now, spent, pending, streak, budget}
  end
end
local slot = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if slot < now then slot = now end
local n = #KEYS - 6
local tats = {}
for i = 1, n do
  local inc = tonumber(ARGV[4 + 2 * i])
  local tau = tonumber(ARGV[5 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[4 + i]) or '0')
  if tat < now then tat = now end
  tats[i] = tat
  local allowed = tat + inc - tau
  if allowed > slot then slot = allowed end
end
if slot - now > tonumber(ARGV[2]) then
  return {1, now, slot, 0, streak}
end
for i = 1, n do
  local inc = tonumber(ARGV[4 + 2 * i])
  if inc > 0 then
    local tat = tats[i]
    if slot > tat then tat = slot end
    tat = tat + inc
    redis.call('SET', KEYS[4 + i], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
  end
end
if need > 0 then
  redis.call('INCRBY', KEYS[4], need)
  redis.call('PEXPIRE', KEYS[4], ARGV[5])
end
return {0, now, slot, 0, streak, tonumber(redis.call('GET', KEYS[#KEYS]) or '0')}
