-- requeue.lua: puts a job that was started here back at the end of the queue
-- taken next, unfinished (shutdown). Its start does not count in attempts,
-- and its partial upload is deleted.
--
-- Returns 1 when the job was put back, 0 when it is no longer this worker's.
local processing = KEYS[1]
local queue = KEYS[2]
local status = KEYS[3]
local upload = KEYS[4]
local uploads = KEYS[5]
local doc = ARGV[1]
local worker = ARGV[2]
local attempt = ARGV[3]
local now = ARGV[4]
local channel = ARGV[5]
local event = ARGV[6]

if not redis.call('LPOS', processing, doc) then
  return 0
end
redis.call('LREM', processing, 1, doc)
redis.call('RPUSH', queue, doc)
redis.call('DEL', upload)
redis.call('SREM', uploads, upload)
local st = redis.call('HMGET', status, 'worker', 'attempts')
if st[1] == worker and st[2] == attempt then
  redis.call('HSET', status, 'state', 'queued', 'progress', '0', 'updated_at', now,
             'attempts', tonumber(attempt) - 1)
end
if event ~= '' then
  redis.call('PUBLISH', channel, event)
end
return 1
