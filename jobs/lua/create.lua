-- create.lua: ARGV now, spec JSON, tile count, first day (days since 1970-01-01
-- of the spec's From, UTC), From, To (RFC 3339), then tile name/JSON pairs.
if redis.call('EXISTS', K_JOB) == 1 then
  return fail('EXISTS')
end
local now, spec, n, day0, from, to = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
-- The job hash is written last: its existence is the job's existence.
redis.call('DEL', K_TILES, K_ANALYSED, K_ACQ, K_ORD, K_ST, K_ERR, K_FAILED, K_RECORDS, K_FAILED_TILES, K_FAILED_GROUPS, K_FEED)
for i = 0, n - 1 do
  redis.call('HSET', K_TILES, ARGV[7 + 2 * i], ARGV[8 + 2 * i])
end
redis.call('HSET', K_JOB, 'spec', spec, 'status', 'CREATED', 'created_at', now, 'updated_at', now,
  'day0', day0, 'from', from, 'to', to, 'next_ord', 0, 'feed_cursor', 0,
  'tiles', n, 'tiles_analysed', 0, 'tiles_failed', 0, 'items', 0, 'catalog_requests', 0, 'est_mpu', 0, 'spent_mpu', 0,
  'restarts', 0, 'n:PENDING', 0, 'n:SCHEDULED', 0, 'n:PROCESSING', 0, 'n:DONE', 0, 'n:FAILED', 0)
return 'OK'
