-- Deletes the shared token only if it is still the rejected one.
-- KEYS[1] token key (JSON record with a "fp" field: hex SHA-256 of the access token)
-- ARGV[1] fingerprint of the rejected access token
-- Returns 1 when the token was deleted, 0 when it was missing or already replaced.
local v = redis.call('GET', KEYS[1])
if not v then
  return 0
end
local ok, rec = pcall(cjson.decode, v)
if ok and type(rec) == 'table' and rec['fp'] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
