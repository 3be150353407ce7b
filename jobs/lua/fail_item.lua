-- fail_item.lua: ARGV now, item id, error message, permanent ("1"/"0"), max returns.
-- A permanent failure, or a stuck item returned max times already, becomes FAILED;
-- otherwise the item goes back to PENDING (and to the feed-first list). The
-- message is kept in the err hash under the item's ordinal. Returns {item
-- status, final job status or ""}.
local now, id, msg, permanent, maxret = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1', tonumber(ARGV[5])
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
local item = get_item(id)
if not item then
  return fail('ITEMNOTFOUND ' .. id)
end
if item.status == 'DONE' or item.status == 'FAILED' then
  return {item.status, ''}
end
redis.call('HSET', K_ERR, item.ord, msg)
if permanent or item.returns >= maxret then
  move_item(item, 'FAILED')
  -- The job's error is the latest reason, so a FAILED job says why.
  redis.call('HSET', K_JOB, 'error', 'item ' .. id .. ': ' .. msg)
else
  item.returns = item.returns + 1
  move_item(item, 'PENDING')
  redis.call('RPUSH', K_FEED, item.ord)
end
save_item(item)
redis.call('HSET', K_JOB, 'updated_at', now)
return {item.status, maybe_finish(now, true)}
