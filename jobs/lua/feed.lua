-- feed.lua: ARGV now, n. Takes up to n PENDING items of a PROCESSING job that is
-- not paused and makes them SCHEDULED, for the feeder to queue their tasks: first
-- the feed-first list (returned, restarted, handed back), then any PENDING item.
-- A job that is not PROCESSING, or is paused (stopped_reason set, e.g.
-- OUT_OF_PU), gives none. Returns the items' JSON.
local now, n = ARGV[1], tonumber(ARGV[2])
local h = redis.call('HMGET', K_JOB, 'status', 'stopped_reason')
if not h[1] then
  return fail('NOTFOUND')
end
if h[1] ~= 'PROCESSING' or (h[2] and h[2] ~= '') or n <= 0 then
  return {}
end
local out = {}
local function take(item)
  move_item(item, 'SCHEDULED', now)
  save_item(item)
  out[#out + 1] = cjson.encode(item)
end
while #out < n do
  local id = redis.call('LPOP', K_FEED)
  if not id then
    break
  end
  local item = get_item(id)
  if item and item.status == 'PENDING' then
    take(item)
  end
end
if #out < n then
  local ids = redis.call('SRANDMEMBER', SETS.PENDING, n - #out)
  for _, id in ipairs(ids) do
    local item = get_item(id)
    if item and item.status == 'PENDING' then
      take(item)
    end
  end
end
if #out > 0 then
  redis.call('HSET', K_JOB, 'updated_at', now)
end
return out
