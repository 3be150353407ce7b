-- record_analysis.lua: ARGV now, catalog requests, tile count T, T tile names,
-- then item quadruples id, tile, JSON, estimated milli-PU.
-- Only tiles not analysed (or failed) before count: a re-run of the same group
-- changes nothing.
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
while i + 3 <= #ARGV do
  local id, tile = ARGV[i], ARGV[i + 1]
  if fresh[tile] and redis.call('HSETNX', K_ITEMS, id, ARGV[i + 2]) == 1 then
    redis.call('SADD', SETS.PENDING, id)
    added = added + 1
    est = est + tonumber(ARGV[i + 3])
  end
  i = i + 4
end
redis.call('HINCRBY', K_JOB, 'items', added)
redis.call('HINCRBY', K_JOB, 'n:PENDING', added)
redis.call('HINCRBY', K_JOB, 'est_mpu', est)
redis.call('HINCRBY', K_JOB, 'catalog_requests', requests)
local analysed = redis.call('SCARD', K_ANALYSED)
redis.call('HSET', K_JOB, 'tiles_analysed', analysed, 'updated_at', now)
return end_analysis(now)
