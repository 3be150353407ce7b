-- A 429 seen by any process: one fleet-wide "not before" plus exponential backoff
-- while 429s repeat, and the violated policies' mirrors marked empty at that time
-- so admissions resume paced instead of in a burst.
--
-- KEYS[1]   backoff hash: "until" (us), "streak" (429s in a row, counting one per hold)
-- KEYS[2]   the fleet's queue shift (us, cumulative; see resync.lua)
-- KEYS[3..2+m] TAT keys of the policies to mark empty
-- KEYS[3+m..]  TAT keys of every enforced policy, for the queue shift
-- ARGV[1]   now in us, or "" for the Redis server's TIME
-- ARGV[2]   server-requested wait, us
-- ARGV[3]   backoff base, us (doubled per repeated 429)
-- ARGV[4]   backoff cap, us
-- ARGV[5]   jitter factor in [0.5, 1]
-- ARGV[6]   cap of the whole hold, us
-- ARGV[7]   how long a streak is remembered after the last 429, ms
-- ARGV[8]   m, the number of policies to mark empty
-- ARGV[8+i] policy i to mark empty: burst tolerance minus one unit's increment, us
-- ARGV[8+m+j] enforced policy j: burst tolerance, us
--
-- The hold's extension also moves every slot already handed out (the queue
-- shift): without it the waiters booked before the 429 would go out during the
-- hold. A policy with slots booked ahead has its TAT moved by the same amount, so
-- admissions after the hold queue behind the moved waiters, paced.
-- Returns {hold until - now (us), streak, shift added (us)}.
local now = clock_now(ARGV[1]) -- clock.lua
local cur = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
local streak
if cur > now then
  -- a 429 during a hold answers a request sent before the hold: same episode,
  -- so many in-flight requests failing together do not inflate the backoff
  streak = tonumber(redis.call('HGET', KEYS[1], 'streak') or '0')
  if streak < 1 then
    streak = 1
    redis.call('HSET', KEYS[1], 'streak', 1)
  end
else
  streak = redis.call('HINCRBY', KEYS[1], 'streak', 1)
end
local extra = tonumber(ARGV[3]) * math.pow(2, streak - 1)
if extra > tonumber(ARGV[4]) then extra = tonumber(ARGV[4]) end
extra = math.floor(extra * tonumber(ARGV[5]))
local wait = tonumber(ARGV[2]) + extra
if wait > tonumber(ARGV[6]) then wait = tonumber(ARGV[6]) end
local untilv = now + wait
if cur > untilv then untilv = cur end
redis.call('HSET', KEYS[1], 'until', string.format('%.0f', untilv))
local ttl = math.floor((untilv - now) / 1000) + 1
if ttl < tonumber(ARGV[7]) then ttl = tonumber(ARGV[7]) end
redis.call('PEXPIRE', KEYS[1], ttl)
local m = tonumber(ARGV[8])
local ext = untilv - math.max(cur, now)
local shifted = 0
if ext > 0 then
  for j = 3 + m, #KEYS do
    local tau = tonumber(ARGV[6 + j])
    local tat = tonumber(redis.call('GET', KEYS[j]) or '0')
    if tat - tau > now then
      tat = tat + ext
      redis.call('SET', KEYS[j], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
      shifted = ext
    end
  end
  if shifted > 0 then
    redis.call('INCRBY', KEYS[2], string.format('%.0f', shifted))
    redis.call('PEXPIRE', KEYS[2], 600000)
  end
end
for i = 1, m do
  local floor = untilv + tonumber(ARGV[8 + i])
  local tat = tonumber(redis.call('GET', KEYS[2 + i]) or '0')
  if tat < floor then
    redis.call('SET', KEYS[2 + i], string.format('%.0f', floor), 'PX', math.floor((floor - now) / 1000) + 1000)
  end
end
return {untilv - now, streak, shifted}
