-- upload.lua: one chunk of a workbook's upload. The first chunk starts the
-- upload over, with its TTL, and lists its key in the worker's set of
-- uploads (so that recovery finds it); a later chunk is appended only while
-- the upload still exists, so that an upload that expired meanwhile is never
-- revived holding only its tail.
--
-- Returns the upload's length so far.
local upload = KEYS[1]
local uploads = KEYS[2]
local chunk = ARGV[1]
local first = ARGV[2] == '1'
local ttl_ms = ARGV[3]

if first then
  redis.call('SADD', uploads, upload)
  redis.call('PEXPIRE', uploads, ttl_ms)
  redis.call('SET', upload, chunk, 'PX', ttl_ms)
  return #chunk
end
if redis.call('EXISTS', upload) == 0 then
  return redis.error_reply('ERR the upload ' .. upload .. ' is gone')
end
return redis.call('APPEND', upload, chunk)
