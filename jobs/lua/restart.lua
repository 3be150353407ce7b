-- restart.lua: ARGV now, page size. PARTIAL or FAILED job. Restart is paged:
-- each call moves up to a page of FAILED items back to PENDING (status byte 0:
-- attempts and returns reset, error dropped, onto the feed-first list) and
-- returns {moved, 0, {}} while FAILED items remain; the job keeps its final
-- status meanwhile, so nothing feeds or finishes it half restarted, and a
-- restart cut short is continued by the next one. The call that finds no FAILED
-- item left flips the job: without failed catalog groups it becomes PROCESSING
-- again; with them, their tiles become un-analysed again (failed-tiles and
-- failed-groups hashes cleared, counter 0) and the job becomes ANALYSING with
-- auto-start on, so the analysis that the re-run groups complete starts
-- processing. The job's error is cleared. That call returns {moved, 1, flat
-- list of group number / group JSON pairs}.
local now, page = ARGV[1], tonumber(ARGV[2])
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
if st ~= 'PARTIAL' and st ~= 'FAILED' then
  return fail('TRANSITION ' .. st .. ' PROCESSING')
end
local ords = redis.call('ZRANGE', K_FAILED, 0, page - 1)
for _, o in ipairs(ords) do
  local ord = tonumber(o)
  redis.call('SETRANGE', K_ST, ord, string.char(0))
  redis.call('HDEL', K_ERR, ord)
  redis.call('ZREM', K_FAILED, o)
  redis.call('RPUSH', K_FEED, ord)
end
local n = #ords
if n > 0 then
  redis.call('HINCRBY', K_JOB, 'n:FAILED', 0 - n)
  redis.call('HINCRBY', K_JOB, 'n:PENDING', n)
end
if redis.call('ZCARD', K_FAILED) > 0 then
  return {n, 0, {}}
end
local groups = redis.call('HGETALL', K_FAILED_GROUPS)
if #groups > 0 then
  redis.call('DEL', K_FAILED_TILES, K_FAILED_GROUPS)
  redis.call('HSET', K_JOB, 'status', 'ANALYSING', 'tiles_failed', 0, 'auto_start', 1, 'updated_at', now)
  redis.call('HDEL', K_JOB, 'finished_at', 'analysed_at', 'error')
else
  redis.call('HSET', K_JOB, 'status', 'PROCESSING', 'updated_at', now)
  redis.call('HDEL', K_JOB, 'finished_at', 'error')
end
redis.call('HINCRBY', K_JOB, 'restarts', 1)
return {n, 1, groups}
