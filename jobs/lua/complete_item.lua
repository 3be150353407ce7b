-- complete_item.lua: ARGV now, item id, outputs JSON ("" for none), spent milli-PU.
-- Returns {item status, final job status or ""}.
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
  return {'DONE', ''}
end
if item.status == 'FAILED' and st ~= 'PROCESSING' and st ~= 'CANCELED' then
  return fail('TRANSITION ' .. st .. ' DONE')
end
move_item(item, 'DONE', now)
if outputs ~= '' then
  item.outputs = cjson.decode(outputs)
end
item.spent_mpu = num(item.spent_mpu) + spent
save_item(item)
redis.call('HINCRBY', K_JOB, 'spent_mpu', spent)
redis.call('HSET', K_JOB, 'updated_at', now)
return {'DONE', maybe_finish(now)}
