-- restart.lua: ARGV now. PARTIAL or FAILED job: every FAILED item goes back to
-- PENDING with attempts, returns and task id reset. Without failed catalog
-- groups the job becomes PROCESSING again; with them, their tiles become
-- un-analysed again (failed-tiles and failed-groups hashes cleared, counter 0)
-- and the job becomes ANALYSING with auto-start on, so the analysis that the
-- re-run groups complete starts processing. The job's error is cleared.
-- Returns {item ids, flat list of group number / group JSON pairs}.
local now = ARGV[1]
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
if st ~= 'PARTIAL' and st ~= 'FAILED' then
  return fail('TRANSITION ' .. st .. ' PROCESSING')
end
local ids = redis.call('SMEMBERS', SETS.FAILED)
for _, id in ipairs(ids) do
  local item = get_item(id)
  item.attempts = 0
  item.returns = 0
  item.task_id = ''
  move_item(item, 'PENDING', now)
  save_item(item)
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
return {ids, groups}
