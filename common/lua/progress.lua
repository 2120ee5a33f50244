-- progress.lua: progress of a running job, written only while the status
-- still names this worker and this attempt: a worker that was frozen past its
-- heartbeat and woke up after another took the job over writes nothing.
--
-- Returns {owned, cancel}, each 0 or 1.
local status = KEYS[1]
local worker = ARGV[1]
local attempt = ARGV[2]
local channel = ARGV[3]
local event = ARGV[4]
local first_pair = 5

local st = redis.call('HMGET', status, 'worker', 'attempts', 'state', 'cancel')
local cancel = st[4] == '1' and 1 or 0
if st[1] ~= worker or st[2] ~= attempt or st[3] ~= 'running' then
  return {0, cancel}
end
if #ARGV >= first_pair then
  redis.call('HSET', status, unpack(ARGV, first_pair))
end
if event ~= '' then
  redis.call('PUBLISH', channel, event)
end
return {1, cancel}
