-- restart.lua: ARGV now. PARTIAL or FAILED job: every FAILED item goes back to
-- PENDING with attempts and returns reset and its error dropped. Without failed
-- catalog groups the job becomes PROCESSING again; with them, their tiles become
-- un-analysed again (failed-tiles and failed-groups hashes cleared, counter 0)
-- and the job becomes ANALYSING with auto-start on, so the analysis that the
-- re-run groups complete starts processing. The job's error is cleared.
-- Returns {item descriptions (see describe), tile records, job_times(), flat list of group
-- number / group JSON pairs}.
local now = ARGV[1]
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
if st ~= 'PARTIAL' and st ~= 'FAILED' then
  return fail('TRANSITION ' .. st .. ' PROCESSING')
end
local ords = redis.call('ZRANGE', K_FAILED, 0, -1)
for _, o in ipairs(ords) do
  local ord = tonumber(o)
  redis.call('SETRANGE', K_ST, ord, string.char(0))
  redis.call('HDEL', K_ERR, ord)
  redis.call('RPUSH', K_AGAIN, ord)
end
local n = #ords
if n > 0 then
  redis.call('HINCRBY', K_JOB, 'n:FAILED', 0 - n)
  redis.call('HINCRBY', K_JOB, 'n:PENDING', n)
  redis.call('DEL', K_FAILED)
end
local out, recs, cache = {}, {}, {}
for _, o in ipairs(ords) do
  describe(out, recs, cache, tonumber(o))
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
return {out, flat_recs(recs), job_times(), groups}
