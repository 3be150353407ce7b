-- commit_records.lua: ARGV part (the number of parts stored so far, as the
-- caller read it), min id (the first stream id to keep), outputs, bytes and
-- milli-PU of the part. Once the caller has stored the records before min id
-- as manifest part number part, they leave the stream and the part counts in
-- the job hash; a caller whose part number is stale changes nothing (another
-- one committed that part). Returns 1 when committed, 0 when stale.
local part, minid = tonumber(ARGV[1]), ARGV[2]
local st = job_status()
if not st then
  return fail('NOTFOUND')
end
if num(redis.call('HGET', K_JOB, 'manifest_parts')) ~= part then
  return 0
end
redis.call('XTRIM', K_RECORDS, 'MINID', minid)
redis.call('HINCRBY', K_JOB, 'manifest_parts', 1)
redis.call('HINCRBY', K_JOB, 'manifest_outputs', ARGV[3])
redis.call('HINCRBY', K_JOB, 'manifest_bytes', ARGV[4])
redis.call('HINCRBY', K_JOB, 'manifest_mpu', ARGV[5])
return 1
