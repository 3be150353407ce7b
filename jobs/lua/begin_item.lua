-- begin_item.lua: ARGV now, item id. Returns 1 when the worker should process the
-- item (it is now PROCESSING, attempts+1), 0 when it should not (job canceled,
-- item already DONE or FAILED).
local now, id = ARGV[1], ARGV[2]
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
if st == 'CANCELED' then
  return 0
end
local item = get_item(id)
if not item then
  return fail('ITEMNOTFOUND ' .. id)
end
if item.status == 'DONE' or item.status == 'FAILED' then
  return 0
end
if st ~= 'PROCESSING' then
  return fail('TRANSITION ' .. st .. ' PROCESSING')
end
item.attempts = item.attempts + 1
move_item(item, 'PROCESSING')
save_item(item)
return 1
