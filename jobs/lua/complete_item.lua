-- complete_item.lua: ARGV now, item id, outputs JSON ("" for none), spent milli-PU.
-- The item becomes DONE and its record (id, spent, outputs) is appended to the
-- records stream, once: completing a DONE item again adds nothing.
-- Returns {item status, final job status or "", records in the stream}.
local now, id, outputs, spent = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
local item = get_item(id)
if not item then
  return fail('ITEMNOTFOUND ' .. id)
end
if item.status == 'DONE' then
  return {'DONE', '', tostring(redis.call('XLEN', K_RECORDS))}
end
if item.status == 'FAILED' and st ~= 'PROCESSING' and st ~= 'CANCELED' then
  return fail('TRANSITION ' .. st .. ' DONE')
end
move_item(item, 'DONE')
save_item(item)
redis.call('XADD', K_RECORDS, '*', 'i', id, 's', spent, 'o', outputs)
redis.call('HINCRBY', K_JOB, 'spent_mpu', spent)
redis.call('HSET', K_JOB, 'updated_at', now)
return {'DONE', maybe_finish(now, true), tostring(redis.call('XLEN', K_RECORDS))}
