-- job.lua: job-level transitions. ARGV op, now, then per op:
--   analyse, start, cancel, finish, resume: nothing; pause: reason, resume_at.
-- Returns the status after the call.
local op, now = ARGV[1], ARGV[2]
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
if op == 'analyse' then
  if st == 'ANALYSING' then
    return st
  end
  if st ~= 'CREATED' then
    return fail('TRANSITION ' .. st .. ' ANALYSING')
  end
  redis.call('HSET', K_JOB, 'status', 'ANALYSING', 'analysis_started_at', now, 'updated_at', now)
  return 'ANALYSING'
elseif op == 'start' then
  if st ~= 'ANALYSIS_DONE' then
    return fail('TRANSITION ' .. st .. ' PROCESSING')
  end
  redis.call('HSET', K_JOB, 'status', 'PROCESSING', 'started_at', now, 'updated_at', now)
  local final = maybe_finish(now, false)
  if final ~= '' then
    return final
  end
  return 'PROCESSING'
elseif op == 'cancel' then
  if st == 'CANCELED' then
    return st
  end
  if is_final(st) then
    return fail('TRANSITION ' .. st .. ' CANCELED')
  end
  redis.call('HSET', K_JOB, 'status', 'CANCELED', 'finished_at', now, 'updated_at', now)
  redis.call('HDEL', K_JOB, 'stopped_reason', 'resume_at', 'ending', 'ending_at')
  return 'CANCELED'
elseif op == 'finish' then
  local ending = redis.call('HGET', K_JOB, 'ending')
  if st ~= 'PROCESSING' or not ending then
    return st
  end
  redis.call('HSET', K_JOB, 'status', ending, 'finished_at', now, 'updated_at', now)
  redis.call('HDEL', K_JOB, 'ending', 'ending_at', 'stopped_reason', 'resume_at')
  return ending
elseif op == 'pause' then
  if is_final(st) then
    return fail('TRANSITION ' .. st .. ' PAUSED')
  end
  redis.call('HSET', K_JOB, 'stopped_reason', ARGV[3], 'resume_at', ARGV[4], 'updated_at', now)
  return st
elseif op == 'resume' then
  if redis.call('HDEL', K_JOB, 'stopped_reason', 'resume_at') > 0 then
    redis.call('HSET', K_JOB, 'updated_at', now)
  end
  return st
end
return fail('unknown op ' .. tostring(op))
