-- schedule.lua: ARGV now, then item ids. PENDING items become SCHEDULED.
-- Returns how many moved.
local now = ARGV[1]
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
if st ~= 'PROCESSING' then
  return fail('TRANSITION ' .. st .. ' SCHEDULED')
end
local items = {}
for i = 2, #ARGV do
  local item = get_item(ARGV[i])
  if not item then
    return fail('ITEMNOTFOUND ' .. ARGV[i])
  end
  items[#items + 1] = item
end
local moved = 0
for _, item in ipairs(items) do
  if item.status == 'PENDING' then
    move_item(item, 'SCHEDULED')
    save_item(item)
    moved = moved + 1
  end
end
return moved
