-- delete.lua: removes a job that is not ANALYSING or PROCESSING (cancel it first).
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
if st == 'ANALYSING' or st == 'PROCESSING' then
  return fail('TRANSITION ' .. st .. ' DELETED')
end
redis.call('UNLINK', K_JOB, K_TILES, K_ANALYSED, K_ACQ, K_ORD, K_ST, K_ERR, K_FAILED, K_RECORDS, K_FAILED_TILES, K_FAILED_GROUPS, K_FEED)
return 'OK'
