-- common.lua is prepended to every jobs script.
-- KEYS (always the same twelve, all in the job's hash tag):
--   1 job hash, 2 tiles hash, 3 analysed-tiles set, 4 items hash,
--   5..9 item-id sets per status: PENDING, SCHEDULED, PROCESSING, DONE, FAILED,
--   10 failed-tiles hash (tile name -> catalog group number),
--   11 failed-groups hash (group number -> JSON {tiles, reason, failed_at}),
--   12 feed-first list (ids of PENDING items the feeder takes before any other:
--      returned, restarted, or handed back after a failed enqueue; entries whose
--      item is no longer PENDING are skipped).
-- Errors are replies "NOTFOUND", "ITEMNOTFOUND <item>", "TRANSITION <from> <to>",
-- "UNKNOWNTILE <tile>", "EXISTS"; the Go side turns them into typed errors.
-- Every script checks everything before its first write, so an error never leaves
-- a half-applied change.
local K_JOB, K_TILES, K_ANALYSED, K_ITEMS = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local SETS = {PENDING = KEYS[5], SCHEDULED = KEYS[6], PROCESSING = KEYS[7], DONE = KEYS[8], FAILED = KEYS[9]}
local K_FAILED_TILES, K_FAILED_GROUPS, K_FEED = KEYS[10], KEYS[11], KEYS[12]

local function fail(msg)
  return redis.error_reply(msg)
end

local function num(v)
  return tonumber(v) or 0
end

local function job_status()
  return redis.call('HGET', K_JOB, 'status')
end

local function get_item(id)
  local raw = redis.call('HGET', K_ITEMS, id)
  if not raw then
    return nil
  end
  return cjson.decode(raw)
end

local function save_item(item)
  redis.call('HSET', K_ITEMS, item.id, cjson.encode(item))
end

-- move_item changes an item's status, its status set and the job's counters.
local function move_item(item, to, now)
  local from = item.status
  if from ~= to then
    redis.call('SMOVE', SETS[from], SETS[to], item.id)
    redis.call('HINCRBY', K_JOB, 'n:' .. from, -1)
    redis.call('HINCRBY', K_JOB, 'n:' .. to, 1)
    item.status = to
  end
  item.updated_at = now
end

local function is_final(st)
  return st == 'DONE' or st == 'PARTIAL' or st == 'FAILED' or st == 'CANCELED'
end

-- maybe_finish ends a PROCESSING job once no item is PENDING, SCHEDULED or
-- PROCESSING, and returns the final status; "" when the job goes on. Because it
-- runs inside the script that changed the last item, exactly one caller sees it.
-- Tiles whose catalog search failed count like failed items: every item DONE
-- but some tiles failed is PARTIAL; nothing DONE is FAILED.
local function maybe_finish(now)
  local h = redis.call('HMGET', K_JOB, 'status', 'n:PENDING', 'n:SCHEDULED', 'n:PROCESSING', 'n:DONE', 'n:FAILED', 'tiles_failed')
  if h[1] ~= 'PROCESSING' then
    return ''
  end
  if num(h[2]) + num(h[3]) + num(h[4]) > 0 then
    return ''
  end
  local done, failed = num(h[5]), num(h[6]) + num(h[7])
  local final = 'DONE'
  if failed > 0 then
    if done == 0 then
      final = 'FAILED'
    else
      final = 'PARTIAL'
    end
  end
  redis.call('HSET', K_JOB, 'status', final, 'finished_at', now, 'updated_at', now)
  redis.call('HDEL', K_JOB, 'stopped_reason', 'resume_at')
  return final
end

-- auto_starts tells whether a job starts processing as soon as its analysis is
-- done: the spec asks for it (submit without --no-start, or `enqueue start`
-- during the analysis) or a restart re-runs failed catalog groups. A batch job
-- never does here: its poll task starts it with the remote request.
local function auto_starts()
  local h = redis.call('HMGET', K_JOB, 'auto_start', 'spec')
  local ok, spec = pcall(cjson.decode, h[2] or '{}')
  if not ok or type(spec) ~= 'table' then
    spec = {}
  end
  if spec.engine == 'batch' then
    return false
  end
  return h[1] == '1' or spec.auto_start == true
end

-- end_analysis is called by the scripts that analyse or fail tiles. Once every
-- tile is analysed or failed, the job becomes ANALYSIS_DONE ({1, status}: this
-- caller flipped it), and PROCESSING at once when it auto-starts (DONE when it
-- has no item), or FAILED at once when tiles failed and
-- no item was found at all (nothing could ever be processed). Otherwise {0,
-- 'ANALYSING'}. It runs inside the script that recorded the last tile, so
-- exactly one caller flips.
local function end_analysis(now)
  local h = redis.call('HMGET', K_JOB, 'tiles', 'tiles_analysed', 'tiles_failed', 'items')
  if num(h[2]) + num(h[3]) < num(h[1]) then
    return {0, 'ANALYSING'}
  end
  if num(h[3]) > 0 and num(h[4]) == 0 then
    redis.call('HSET', K_JOB, 'status', 'FAILED', 'analysed_at', now, 'finished_at', now, 'updated_at', now)
    redis.call('HDEL', K_JOB, 'stopped_reason', 'resume_at')
    return {0, 'FAILED'}
  end
  redis.call('HSET', K_JOB, 'status', 'ANALYSIS_DONE', 'analysed_at', now, 'updated_at', now)
  if not auto_starts() then
    return {1, 'ANALYSIS_DONE'}
  end
  -- Auto-start is a status change: the feeder finds the job in the active index
  -- and queues its items a window at a time.
  redis.call('HSET', K_JOB, 'status', 'PROCESSING', 'started_at', now)
  local final = maybe_finish(now)
  if final ~= '' then
    return {1, final}
  end
  return {1, 'PROCESSING'}
end
