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
-- class matches the status bytes of status want, whatever the returns and
-- attempts bits, so string.find (in C) skips the other items.
local class = nil
if want >= 0 then
  local cs = {}
  for b = want, 255, 8 do
    local c = string.char(b)
    if b == 0 then
      cs[#cs + 1] = '%z'
    elseif string.find(c, '^%w$') then
      cs[#cs + 1] = c
    else
      cs[#cs + 1] = '%' .. c
    end
  end
  class = '[' .. table.concat(cs) .. ']'
end
local found = 0
while cur < stop and found < n do
  local last = math.min(stop, cur + 65536) - 1
  local len = last - cur + 1
  local chunk = redis.call('GETRANGE', K_ST, cur, last)
  if #chunk < len then
    -- Bytes past the end of the string read as 0 (PENDING).
    chunk = chunk .. string.rep(string.char(0), len - #chunk)
  end
  local pos = 1
  while found < n do
    local p = nil
    if class then
      p = string.find(chunk, class, pos)
    elseif pos <= len then
      p = pos
    end
    if not p then
      break
    end
    describe(out, recs, cache, cur + p - 1, string.byte(chunk, p))
    found = found + 1
    pos = p + 1
  end
  if found >= n then
    cur = cur + pos - 1
  else
    cur = last + 1
  end
end
if cur >= total then
  cur = -1
end
return {cur, out, flat_recs(recs), job_times()}
