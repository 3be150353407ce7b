-- restart.lua: ARGV now. PARTIAL or FAILED -> PROCESSING; every FAILED item goes
-- back to PENDING with attempts, returns and task id reset. Returns their ids.
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
redis.call('HSET', K_JOB, 'status', 'PROCESSING', 'updated_at', now)
redis.call('HDEL', K_JOB, 'finished_at')
redis.call('HINCRBY', K_JOB, 'restarts', 1)
return ids
