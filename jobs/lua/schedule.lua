-- schedule.lua: ARGV now, then item id / task id pairs. PENDING items become
-- SCHEDULED; every non-final item records its task id. Returns how many moved.
local now = ARGV[1]
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
if st ~= 'PROCESSING' then
  return fail('TRANSITION ' .. st .. ' SCHEDULED')
end
local items = {}
for i = 2, #ARGV - 1, 2 do
  local item = get_item(ARGV[i])
  if not item then
    return fail('ITEMNOTFOUND ' .. ARGV[i])
  end
  items[#items + 1] = {item, ARGV[i + 1]}
end
local moved = 0
for _, p in ipairs(items) do
  local item = p[1]
  if item.status == 'PENDING' or item.status == 'SCHEDULED' or item.status == 'PROCESSING' then
    if item.status == 'PENDING' then
      move_item(item, 'SCHEDULED', now)
      moved = moved + 1
    end
    item.task_id = p[2]
    item.updated_at = now
    save_item(item)
  end
end
return moved
