-- Reconciles each policy's mirror (GCRA TAT) with the units the server says remain,
-- and books ahead the use predicted for the account's other clients. See the
-- package documentation (doc.go) for the algorithm and a worked example.
--
-- Units below are the policy's own (requests or PU); "per" is the emission interval
-- in us per unit, tau the burst tolerance in us, h the headroom fraction.
--   mirror level   Lm = (tau - (TAT - now)) / per     (negative when booked ahead)
--   booked ahead   Uf = max(0, TAT - now - tau) / per
--   target level   Lt = Ls - h*C - Uf                 (Ls: the server's level)
--   excess         E  = Lm - Lt                       (> 0: the mirror is too loose)
--   discrepancy    D  = Lm - Ls
-- Others' use since the last resync is X = D - D_post(last) (D_post: D right after
-- the last resync's correction); rate is max(0, an EWMA of X/dt with time
-- constant ARGV[5]); the predicted use rate * (now + horizon - booked until) is booked
-- ahead; a prediction that was too high is given back, at most what was predicted
-- and never beyond the server's level.
--
-- KEYS[1]        snapshot hash of the levels: "kind:period" -> units, "at" -> unix ms
-- KEYS[2i]       policy i's TAT key
-- KEYS[2i+1]     policy i's sync state hash: at (us), post (D_post), rate (the signed EWMA, units/s),
--                until (us, booked until), ext (1 while others' use is detected)
-- KEYS[#KEYS]    the fleet's queue shift (us, cumulative): a tightening that moves
--                a policy's TAT later while slots of it are booked ahead moves the
--                whole booked queue, not only its tail — every slot already handed
--                out is that much later. Waiters re-read it before they send
--                (Limiter.Wait); without it the slots booked before the correction
--                go out as booked, onto a server that has fewer units than that.
-- ARGV[1]        now in us, or "" for the Redis server's TIME
-- ARGV[2]        snapshot time, unix ms
-- ARGV[3]        headroom fraction h
-- ARGV[4]        booking horizon, us (the resync interval)
-- ARGV[5]        EWMA time constant, us
-- ARGV[6]        longest gap between resyncs that still gives a sample, us
-- ARGV[7]        TTL of the snapshot, ms
-- ARGV[8]        TTL of the sync state, ms
-- ARGV[9]        detection threshold: rate * period >= this x capacity
-- ARGV[10]       end of detection: rate * period < this x capacity
-- ARGV[11]       n: number of snapshot fields, then n (field, units) pairs
-- then 5 per policy: tau (us), per (us per unit), capacity, server level, period (us)
--
-- Returns {now, then 8 strings per policy: Lm, E, X ("" without a sample), rate,
-- booked, given back, TAT change (us), flag (1 others' use newly detected,
-- 2 no longer detected, 0 otherwise), then the queue shift added (us)}.
local now = clock_now(ARGV[1]) -- clock.lua
local h = tonumber(ARGV[3])
local horizon = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local maxgap = tonumber(ARGV[6])
local on = tonumber(ARGV[9])
local off = tonumber(ARGV[10])
local nsnap = tonumber(ARGV[11])

redis.call('DEL', KEYS[1])
local snap = {'at', ARGV[2]}
for i = 1, nsnap do
  snap[#snap + 1] = ARGV[10 + 2 * i]
  snap[#snap + 1] = ARGV[11 + 2 * i]
end
redis.call('HSET', KEYS[1], unpack(snap))
redis.call('PEXPIRE', KEYS[1], ARGV[7])

local function f(v) return string.format('%.6f', v) end

local out = {string.format('%.0f', now)}
local base = 11 + 2 * nsnap
local shift = 0
for i = 1, (#KEYS - 2) / 2 do
  local a = base + 5 * (i - 1)
  local tau = tonumber(ARGV[a + 1])
  local per = tonumber(ARGV[a + 2])
  local cap = tonumber(ARGV[a + 3])
  local ls = tonumber(ARGV[a + 4])
  local period = tonumber(ARGV[a + 5])
  local tatKey, stKey = KEYS[2 * i], KEYS[2 * i + 1]

  local tat = tonumber(redis.call('GET', tatKey) or '0')
  if tat < now then tat = now end
  local lm = (tau - (tat - now)) / per
  local uf = math.max(0, tat - now - tau) / per
  local lt = ls - h * cap - uf
  local e = lm - lt
  local d = lm - ls

  local st = redis.call('HMGET', stKey, 'at', 'post', 'rate', 'until', 'ext')
  local at, post = tonumber(st[1]), tonumber(st[2])
  -- mean: the EWMA of X/dt, signed. Between resyncs our own booked-ahead queue
  -- grows and shrinks, which X cannot tell from others' use; that noise has no
  -- bias, but clamping the mean at 0 would give it one (a phantom other client
  -- in a PU-bound fleet). Only the booking uses max(mean, 0).
  local mean = tonumber(st[3]) or 0
  local rate = math.max(mean, 0)
  local untilv = tonumber(st[4]) or now
  local ext = tonumber(st[5]) or 0

  -- others' use since the last resync
  local x, pred = nil, 0
  if at and post and now > at and now - at <= maxgap and now - at <= period / 2 then
    local dt = now - at
    local covered = math.min(now, untilv) - at
    if covered > 0 then pred = rate * covered / 1000000 end
    x = d - post
    -- a (nearly) full server bucket hides others' use, and it does not matter
    if ls >= cap * (1 - h) then x = 0 end
    local alpha = 1 - math.exp(-dt / window)
    mean = mean + alpha * (x * 1000000 / dt - mean)
    -- a negative mean beyond one capacity per period would be an old artefact
    if mean < -cap * 1000000 / period then mean = -cap * 1000000 / period end
    rate = math.max(mean, 0)
  end

  -- correction: tighten to the server, or give back an over-prediction
  local adjust, give = 0, 0
  if e > 0 then
    adjust = -e
  elseif x ~= nil and pred > 0 then
    give = pred - x
    if give > pred then give = pred end
    if give > -e then give = -e end
    if give < 0 then give = 0 end
    adjust = give
  end
  -- booking: others' predicted use until one interval from now
  local book = 0
  local from = math.max(untilv, now)
  if rate > 0 and now + horizon > from then
    book = math.min(rate * (now + horizon - from) / 1000000, cap)
  end
  adjust = adjust - book
  untilv = math.max(untilv, now + horizon)

  local delta = math.floor(-adjust * per + 0.5)
  local ntat = tat
  if delta ~= 0 then
    ntat = tat + delta
    if ntat <= now then
      redis.call('DEL', tatKey)
      ntat = now
    else
      redis.call('SET', tatKey, string.format('%.0f', ntat), 'PX', math.floor((ntat - now) / 1000) + 1000)
    end
  end
  local lmAfter = (tau - (ntat - now)) / per
  -- slots of this policy are booked ahead (the last one handed out is still
  -- to come): they all move with the tightening. Only with the tightening, a
  -- measured shortfall: a booking of others' predicted use is a forecast that a
  -- later resync may give back, and a give-back cannot bring sleeping waiters
  -- forward, so shifting for bookings lost their share whenever the forecast was
  -- too high (86% of a PU policy at 64 clients, measured; 99.3% without).
  local tight = 0
  if e > 0 then tight = math.floor(e * per + 0.5) end
  local mv = math.min(ntat - tat, tight)
  if mv > 0 and tat - tau > now and mv > shift then shift = mv end

  local flag = 0
  if ext == 0 and rate * period / 1000000 >= on * cap then
    ext, flag = 1, 1
  elseif ext == 1 and rate * period / 1000000 < off * cap then
    ext, flag = 0, 2
  end
  redis.call('HSET', stKey, 'at', string.format('%.0f', now), 'post', f(lmAfter - ls), 'rate', f(mean),
    'until', string.format('%.0f', untilv), 'ext', ext)
  redis.call('PEXPIRE', stKey, ARGV[8])

  local xs = ''
  if x ~= nil then xs = f(x) end
  out[#out + 1] = f(lm)
  out[#out + 1] = f(e)
  out[#out + 1] = xs
  out[#out + 1] = f(rate)
  out[#out + 1] = f(book)
  out[#out + 1] = f(give)
  out[#out + 1] = string.format('%.0f', ntat - tat)
  out[#out + 1] = tostring(flag)
end
if shift > 0 then
  redis.call('INCRBY', KEYS[#KEYS], string.format('%.0f', shift))
  redis.call('PEXPIRE', KEYS[#KEYS], ARGV[8])
end
out[#out + 1] = string.format('%.0f', shift)
return out
