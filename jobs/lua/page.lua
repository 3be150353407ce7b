-- page.lua: ARGV status code (-1: every status), cursor (first ordinal to look
-- at), n (items wanted), budget (ordinals to look at, at most).
-- FAILED items are read from the failed index; the others by walking the status
-- bytes from the cursor. Returns {next cursor (-1 when the job's ordinals are
-- exhausted), item descriptions (see describe), tile records, job_times()}.
local want, cur, n, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', K_JOB) == 0 then
  return fail('NOTFOUND')
end
local out, recs, cache = {}, {}, {}
if want == 4 then
  local ords = redis.call('ZRANGEBYSCORE', K_FAILED, cur, '+inf', 'LIMIT', 0, n + 1)
  local next = -1
  for k, o in ipairs(ords) do
    if k > n then
      next = tonumber(o)
      break
    end
    describe(out, recs, cache, tonumber(o))
  end
  return {next, out, flat_recs(recs), job_times()}
end
local total = num(redis.call('HGET', K_JOB, 'next_ord'))
local stop = math.min(total, cur + budget)
local found = 0
while cur < stop and found < n do
  local last = math.min(stop, cur + 4096) - 1
  local chunk = redis.call('GETRANGE', K_ST, cur, last)
  for k = 0, last - cur do
    local v = string.byte(chunk, k + 1) or 0
    if want < 0 or v % 8 == want then
      describe(out, recs, cache, cur + k, v)
      found = found + 1
      if found >= n then
        cur = cur + k + 1
        break
      end
    end
    if k == last - cur then
      cur = last + 1
      break
    end
  end
end
if cur >= total then
  cur = -1
end
return {cur, out, flat_recs(recs), job_times()}
