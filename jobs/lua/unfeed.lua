-- unfeed.lua: ARGV now, then item ids. Hands SCHEDULED items whose task could
-- not be queued back to the feeder: PENDING again (returns and attempts kept),
-- at the front of the feed-first list, no return counted. Items in other
-- statuses (their task did run after all) are left alone. Returns how many went
-- back.
local now = ARGV[1]
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
local back = 0
for i = #ARGV, 2, -1 do
  local item = get_item(ARGV[i])
  if item and item.status == 'SCHEDULED' then
    move_item(item, 'PENDING')
    save_item(item)
    redis.call('LPUSH', K_FEED, item.ord)
    back = back + 1
  end
end
if back > 0 then
  redis.call('HSET', K_JOB, 'updated_at', now)
end
return back
