-- feed.lua: ARGV now, n (items wanted), budget (ordinals to look at, at most).
-- Hands out up to n PENDING items of a PROCESSING job that is not paused and
-- makes them SCHEDULED, for the feeder to queue their tasks: first those on
-- the feed-first list (returned, restarted, handed back: behind the cursor),
-- then from the feed cursor on, which moves past what it looked at. Items that
-- are no longer PENDING when met are skipped. A job that is not PROCESSING, or
-- is paused (stopped_reason set, e.g. OUT_OF_PU), gives none. Returns {item
-- descriptions (see describe), tile records, job_times()}.
local now, n, budget = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
local paused = redis.call('HGET', K_JOB, 'stopped_reason')
if st ~= 'PROCESSING' or (paused and paused ~= '') or n <= 0 then
  return {{}, {}, job_times()}
end
local out, recs, cache = {}, {}, {}
local taken = 0
while taken < n do
  local o = redis.call('LPOP', K_FEED)
  if not o then
    break
  end
  local ord = tonumber(o)
  local b = redis.call('GETRANGE', K_ST, ord, ord)
  local v = 0
  if b ~= '' then
    v = string.byte(b)
  end
  if v % 8 == 0 then
    redis.call('SETRANGE', K_ST, ord, string.char(v + 1))
    describe(out, recs, cache, ord, v + 1)
    taken = taken + 1
  end
end
local h = redis.call('HMGET', K_JOB, 'feed_cursor', 'next_ord')
local cur, total = num(h[1]), num(h[2])
local stop = math.min(total, cur + budget)
while cur < stop and taken < n do
  local last = math.min(stop, cur + 4096) - 1
  local chunk = redis.call('GETRANGE', K_ST, cur, last)
  local bytes, changed, upto = {}, false, last
  for k = 0, last - cur do
    local v = string.byte(chunk, k + 1) or 0
    if v % 8 == 0 then
      v = v + 1
      changed = true
      bytes[k + 1] = string.char(v)
      taken = taken + 1
      describe(out, recs, cache, cur + k, v)
    else
      bytes[k + 1] = string.char(v)
    end
    if taken >= n then
      upto = cur + k
      break
    end
  end
  if changed then
    redis.call('SETRANGE', K_ST, cur, table.concat(bytes))
  end
  cur = upto + 1
end
redis.call('HSET', K_JOB, 'feed_cursor', cur)
if taken > 0 then
  redis.call('HINCRBY', K_JOB, 'n:PENDING', 0 - taken)
  redis.call('HINCRBY', K_JOB, 'n:SCHEDULED', taken)
  redis.call('HSET', K_JOB, 'updated_at', now)
end
return {out, flat_recs(recs), job_times()}
