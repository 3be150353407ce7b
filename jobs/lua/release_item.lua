-- release_item.lua: ARGV now, item id. A PROCESSING item whose task goes back to
-- the queue without having failed (e.g. the quota could not admit it soon enough)
-- becomes SCHEDULED again; no return is counted. Returns the item's status.
local now, id = ARGV[1], ARGV[2]
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
local item = get_item(id)
if not item then
  return fail('ITEMNOTFOUND ' .. id)
end
if item.status == 'PROCESSING' then
  move_item(item, 'SCHEDULED')
  save_item(item)
end
return item.status
