-- record_analysis.lua: ARGV now, catalog requests, tile count T, T tile names,
-- then per tile with items a triple: tile name, packed tile record (base
-- ordinal left 0), the tile's estimated milli-PU in total.
-- Only tiles not analysed (or failed) before count: a re-run of the same group
-- changes nothing. Each fresh tile gets the next run of ordinals (INCRBY on the
-- job's next_ord) and its items are PENDING (status bytes 0).
-- Returns {flipped (1 when this call moved the job to ANALYSIS_DONE), status}.
local now, requests, nt = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
local fresh, nfresh = {}, 0
for i = 1, nt do
  local name = ARGV[3 + i]
  if redis.call('HEXISTS', K_TILES, name) == 0 then
    return fail('UNKNOWNTILE ' .. name)
  end
  if not fresh[name] and redis.call('SISMEMBER', K_ANALYSED, name) == 0
      and redis.call('HEXISTS', K_FAILED_TILES, name) == 0 then
    fresh[name] = true
    nfresh = nfresh + 1
  end
end
if nfresh == 0 then
  return {0, st}
end
if st == 'CANCELED' then
  return fail('TRANSITION CANCELED ANALYSING')
end
if st ~= 'CREATED' and st ~= 'ANALYSING' then
  return fail('TRANSITION ' .. st .. ' ANALYSING')
end
if st == 'CREATED' then
  redis.call('HSET', K_JOB, 'status', 'ANALYSING', 'analysis_started_at', now)
end
for name in pairs(fresh) do
  redis.call('SADD', K_ANALYSED, name)
end
local added, est = 0, 0
local i = 4 + nt
while i + 2 <= #ARGV do
  local name, rec = ARGV[i], ARGV[i + 1]
  if fresh[name] and redis.call('HEXISTS', K_ACQ, name) == 0 then
    local n = u16(rec, 6)
    if n > 0 then
      local base = redis.call('HINCRBY', K_JOB, 'next_ord', n) - n
      redis.call('HSET', K_ACQ, name, string.sub(rec, 1, 1) .. pack_u32(base) .. string.sub(rec, 6))
      redis.call('ZADD', K_ORD, base, name)
      -- Grow the status string to cover the new ordinals now, so the memory
      -- the job needs is taken by the analysis rather than later.
      if redis.call('STRLEN', K_ST) < base + n then
        redis.call('SETRANGE', K_ST, base + n - 1, string.char(0))
      end
      added = added + n
      est = est + tonumber(ARGV[i + 2])
    end
  end
  i = i + 3
end
redis.call('HINCRBY', K_JOB, 'items', added)
redis.call('HINCRBY', K_JOB, 'n:PENDING', added)
redis.call('HINCRBY', K_JOB, 'est_mpu', est)
redis.call('HINCRBY', K_JOB, 'catalog_requests', requests)
local analysed = redis.call('SCARD', K_ANALYSED)
redis.call('HSET', K_JOB, 'tiles_analysed', analysed, 'updated_at', now)
return end_analysis(now)
