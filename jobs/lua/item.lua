-- item.lua: ARGV item id. Returns {item description (see describe), tile
-- records, job_times()}.
if redis.call('EXISTS', K_JOB) == 0 then
  return fail('NOTFOUND')
end
local ord = ordinal_of(ARGV[1])
if not ord then
  return fail('ITEMNOTFOUND ' .. ARGV[1])
end
local out, recs = {}, {}
describe(out, recs, {}, ord)
return {out, flat_recs(recs), job_times()}
