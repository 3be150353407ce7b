-- restart.lua: ARGV now, page size. PARTIAL or FAILED job. Restart is paged:
-- each call moves up to a page of FAILED items back to PENDING (attempts,
-- returns and task id reset, onto the feed-first list) and returns {moved, 0,
-- {}} while FAILED items remain; the job keeps its final status meanwhile, so
-- nothing feeds or finishes it half restarted, and a restart cut short is
-- continued by the next one. The call that finds no FAILED item left flips the
-- job: without failed catalog groups it becomes PROCESSING again; with them,
-- their tiles become un-analysed again (failed-tiles and failed-groups hashes
-- cleared, counter 0) and the job becomes ANALYSING with auto-start on, so the
-- analysis that the re-run groups complete starts processing. The job's error
-- is cleared. That call returns {moved, 1, flat list of group number / group
-- JSON pairs}.
local now, page = ARGV[1], tonumber(ARGV[2])
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
if st ~= 'PARTIAL' and st ~= 'FAILED' then
  return fail('TRANSITION ' .. st .. ' PROCESSING')
end
local ids = redis.call('SRANDMEMBER', SETS.FAILED, page)
for _, id in ipairs(ids) do
  local item = get_item(id)
  item.attempts = 0
  item.returns = 0
  item.task_id = ''
  move_item(item, 'PENDING', now)
  save_item(item)
  redis.call('RPUSH', K_FEED, id)
end
if redis.call('SCARD', SETS.FAILED) > 0 then
  return {#ids, 0, {}}
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
return {#ids, 1, groups}
