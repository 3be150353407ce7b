-- fail_analysis.lua: ARGV now, group number, reason, tile count T, T tile names.
-- Records that a catalog group's search failed for good: its tiles that are
-- neither analysed nor failed yet become failed (tile -> group in the
-- failed-tiles hash, the tiles_failed counter), the group is recorded with those
-- tiles and the reason (so a restart can search it again), and the reason
-- becomes the job's error. A repeated call for the same group changes nothing.
-- Returns {flipped (1 when this call moved the job to ANALYSIS_DONE), status}.
local now, group, reason, nt = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
local fresh, names = {}, {}
for i = 1, nt do
  local name = ARGV[4 + i]
  if redis.call('HEXISTS', K_TILES, name) == 0 then
    return fail('UNKNOWNTILE ' .. name)
  end
  if not fresh[name] and redis.call('SISMEMBER', K_ANALYSED, name) == 0
      and redis.call('HEXISTS', K_FAILED_TILES, name) == 0 then
    fresh[name] = true
    names[#names + 1] = name
  end
end
if #names == 0 then
  return {0, st}
end
if st == 'CANCELED' then
  return fail('TRANSITION CANCELED ANALYSING')
end
if st ~= 'CREATED' and st ~= 'ANALYSING' then
  return fail('TRANSITION ' .. st .. ' ANALYSING')
end
if st == 'CREATED' then
  redis.call('HSET', K_JOB, 'status', 'ANALYSING', 'analysis_started_at', now)
end
for _, name in ipairs(names) do
  redis.call('HSET', K_FAILED_TILES, name, group)
end
-- A group whose other tiles failed before (a partial earlier call) keeps them.
local raw = redis.call('HGET', K_FAILED_GROUPS, group)
if raw then
  local old = cjson.decode(raw)
  for _, name in ipairs(old.tiles) do
    names[#names + 1] = name
  end
end
redis.call('HSET', K_FAILED_GROUPS, group, cjson.encode({tiles = names, reason = reason, failed_at = now}))
redis.call('HSET', K_JOB, 'error', reason, 'tiles_failed', redis.call('HLEN', K_FAILED_TILES), 'updated_at', now)
return end_analysis(now)
