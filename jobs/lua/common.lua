-- common.lua is prepended to every jobs script.
-- KEYS (always the same twelve, all in the job's hash tag):
--   1 job hash, 2 tiles hash (name -> grid.Tile JSON), 3 analysed-tiles set,
--   4 acq hash (tile name -> packed tile record, see below),
--   5 ord sorted set (tile name scored by its base ordinal),
--   6 st string (one status byte per ordinal, see below),
--   7 err hash (ordinal -> last error text, only for items that failed or returned),
--   8 failed sorted set (ordinals of FAILED items, scored by ordinal),
--   9 records stream (one entry per DONE item: id, spent milli-PU, outputs JSON),
--   10 failed-tiles hash (tile name -> catalog group number),
--   11 failed-groups hash (group number -> JSON {tiles, reason, failed_at}),
--   12 feed-first list (ordinals of PENDING items the feeder takes before any
--      other: returned, restarted, or handed back after a failed enqueue;
--      entries whose item is no longer PENDING are skipped).
--
-- A tile record (written by the Go side, base filled in by record_analysis):
--   byte 1 flags (1: one estimate for every item; 2: explicit from/to times),
--   bytes 2-5 base ordinal (uint32 big-endian), bytes 6-7 item count n (uint16),
--   then n uint16 day offsets from the job's first day (the item id's date),
--   then the estimate(s) (uint32 milli-PU, once or n times), then with flag 2
--   n pairs of int64 unix-nanosecond from/to. Item i of the tile has ordinal
--   base + i.
-- A status byte: bits 0-2 status (0 PENDING, 1 SCHEDULED, 2 PROCESSING,
-- 3 DONE, 4 FAILED), bits 3-4 returns, bits 5-7 attempts (saturating at 7).
-- Bytes past the end of the string read as 0: a new item is PENDING for free.
--
-- Errors are replies "NOTFOUND", "ITEMNOTFOUND <item>", "TRANSITION <from> <to>",
-- "UNKNOWNTILE <tile>", "EXISTS"; the Go side turns them into typed errors.
-- Every script checks everything before its first write, so an error never leaves
-- a half-applied change.
local K_JOB, K_TILES, K_ANALYSED, K_ACQ, K_ORD = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_ST, K_ERR, K_FAILED, K_RECORDS = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_FAILED_TILES, K_FAILED_GROUPS, K_FEED = KEYS[10], KEYS[11], KEYS[12]

local NAMES = {[0] = 'PENDING', [1] = 'SCHEDULED', [2] = 'PROCESSING', [3] = 'DONE', [4] = 'FAILED'}
local CODES = {PENDING = 0, SCHEDULED = 1, PROCESSING = 2, DONE = 3, FAILED = 4}

local function fail(msg)
  return redis.error_reply(msg)
end

local function num(v)
  return tonumber(v) or 0
end

-- day0 is the job's first day (days since 1970-01-01), read with its status.
local day0 = nil

local function job_status()
  local h = redis.call('HMGET', K_JOB, 'status', 'day0')
  day0 = tonumber(h[2])
  if not h[1] then
    return nil
  end
  return h[1]
end

local function u16(s, pos)
  local a, b = string.byte(s, pos, pos + 1)
  return a * 256 + b
end

local function u32(s, pos)
  local a, b, c, d = string.byte(s, pos, pos + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function pack_u32(v)
  return string.char(math.floor(v / 16777216) % 256, math.floor(v / 65536) % 256, math.floor(v / 256) % 256, v % 256)
end

-- epoch_day is the number of days from 1970-01-01 to y-m-d (proleptic Gregorian).
local function epoch_day(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

-- ordinal_of maps an item id "<tile>_<YYYY-MM-DD>" to its ordinal through the
-- tile's record; nil when the job has no such item.
local function ordinal_of(id)
  local n = #id
  if n < 12 or string.sub(id, n - 10, n - 10) ~= '_' then
    return nil
  end
  local y, m, d = string.match(string.sub(id, n - 9), '^(%d%d%d%d)-(%d%d)-(%d%d)$')
  if not y then
    return nil
  end
  local rec = redis.call('HGET', K_ACQ, string.sub(id, 1, n - 11))
  if not rec then
    return nil
  end
  if not day0 then
    day0 = num(redis.call('HGET', K_JOB, 'day0'))
  end
  local off = epoch_day(tonumber(y), tonumber(m), tonumber(d)) - day0
  local count = u16(rec, 6)
  for i = 0, count - 1 do
    if u16(rec, 8 + 2 * i) == off then
      return u32(rec, 2) + i
    end
  end
  return nil
end

-- get_item reads an item's status byte: {id, ord, status name, returns, attempts}.
local function get_item(id)
  local ord = ordinal_of(id)
  if not ord then
    return nil
  end
  local b = redis.call('GETRANGE', K_ST, ord, ord)
  local v = 0
  if b ~= '' then
    v = string.byte(b)
  end
  return {id = id, ord = ord, status = NAMES[v % 8], returns = math.floor(v / 8) % 4, attempts = math.floor(v / 32)}
end

local function save_item(item)
  local v = CODES[item.status] + 8 * math.min(item.returns, 3) + 32 * math.min(item.attempts, 7)
  redis.call('SETRANGE', K_ST, item.ord, string.char(v))
end

-- move_item changes an item's status, the failed index and the job's counters.
local function move_item(item, to)
  local from = item.status
  if from ~= to then
    redis.call('HINCRBY', K_JOB, 'n:' .. from, -1)
    redis.call('HINCRBY', K_JOB, 'n:' .. to, 1)
    if from == 'FAILED' then
      redis.call('ZREM', K_FAILED, item.ord)
    elseif to == 'FAILED' then
      redis.call('ZADD', K_FAILED, item.ord, item.ord)
    end
    item.status = to
  end
end

-- describe appends to out what the Go side needs to rebuild the item at ordinal
-- ord: {ordinal, tile name, status byte, last error}; the tile's record is
-- added once to recs (name -> record). cache holds the tile found last, so a
-- run of ordinals of one tile costs one lookup. v is the status byte when the
-- caller has read it already (nil: read here); the err hash is only read for
-- items that failed or returned, the only ones with an error.
local function describe(out, recs, cache, ord, v)
  if not cache.name or ord < cache.base or ord >= cache.base + cache.n then
    local r = redis.call('ZREVRANGEBYSCORE', K_ORD, ord, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if #r == 0 then
      return
    end
    local rec = redis.call('HGET', K_ACQ, r[1])
    cache.name, cache.base, cache.n = r[1], tonumber(r[2]), u16(rec, 6)
    if ord >= cache.base + cache.n then
      cache.name = nil
      return
    end
    if not recs[r[1]] then
      recs[r[1]] = rec
    end
  end
  if not v then
    local b = redis.call('GETRANGE', K_ST, ord, ord)
    v = 0
    if b ~= '' then
      v = string.byte(b)
    end
  end
  out[#out + 1] = ord
  out[#out + 1] = cache.name
  out[#out + 1] = v
  if v % 8 == 4 or math.floor(v / 8) % 4 > 0 then
    out[#out + 1] = redis.call('HGET', K_ERR, ord) or ''
  else
    out[#out + 1] = ''
  end
end

-- flat_recs turns a name -> record table into a flat reply list.
local function flat_recs(recs)
  local out = {}
  for name, rec in pairs(recs) do
    out[#out + 1] = name
    out[#out + 1] = rec
  end
  return out
end

-- job_times is what the Go side needs besides a tile record to rebuild an
-- item: {first day, From, To} of the job.
local function job_times()
  return redis.call('HMGET', K_JOB, 'day0', 'from', 'to')
end

local function is_final(st)
  return st == 'DONE' or st == 'PARTIAL' or st == 'FAILED' or st == 'CANCELED'
end
-- maybe_finish notices the end of a PROCESSING job once no item is PENDING,
-- SCHEDULED or PROCESSING and returns its final status; "" when the job goes on
-- or its end was noticed before. After an item's change (by_item true) it records
-- the final status as `ending`: the job stays PROCESSING until its manifest is
-- written and Store.Finish flips it. Otherwise (a start with no item left: no
-- output, no manifest) the status changes at once. Because it
-- runs inside the script that changed the last item, exactly one caller sees it.
-- Tiles whose catalog search failed count like failed items: every item DONE
-- but some tiles failed is PARTIAL; nothing DONE is FAILED.
local function maybe_finish(now, by_item)
  local h = redis.call('HMGET', K_JOB, 'status', 'n:PENDING', 'n:SCHEDULED', 'n:PROCESSING', 'n:DONE', 'n:FAILED', 'tiles_failed', 'ending')
  if h[1] ~= 'PROCESSING' or h[8] then
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
  if by_item then
    redis.call('HSET', K_JOB, 'ending', final, 'ending_at', now, 'updated_at', now)
  else
    redis.call('HSET', K_JOB, 'status', final, 'finished_at', now, 'updated_at', now)
    redis.call('HDEL', K_JOB, 'stopped_reason', 'resume_at')
  end
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
  local final = maybe_finish(now, false)
  if final ~= '' then
    return {1, final}
  end
  return {1, 'PROCESSING'}
end
