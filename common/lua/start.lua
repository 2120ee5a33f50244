-- start.lua: the fenced start of a job. It goes running only while its
-- document is still in this worker's processing list, and never while another
-- live worker, or another job thread of this one (busy_here), runs the same
-- id. Every check comes before the first write.
--
-- Returns {outcome, attempts}; outcome is one of
--   started    the job is running now; attempts counts this start
--   gone       the document is no longer in this worker's processing list
--   duplicate  the same document runs on another live worker or thread: this
--              copy was dropped from the processing list, uncharged
--   deferred   another document with the same id runs on a live worker or
--              thread: this copy went back to the far end of the queue,
--              uncharged
--   cancelled  cancel = 1 was set before the start
--   exhausted  the job was started max_attempts times already
local processing = KEYS[1]
local status = KEYS[2]
local queue = KEYS[3]
local doc = ARGV[1]
local worker = ARGV[2]
local now = ARGV[3]
local max_attempts = tonumber(ARGV[4])
local prefix = ARGV[5]
local channel = ARGV[6]
local event = ARGV[7]
local busy_here = ARGV[8] == '1'

if not redis.call('LPOS', processing, doc) then
  return {'gone', 0}
end
local kind = redis.call('TYPE', status)['ok']
if kind ~= 'none' and kind ~= 'hash' then
  return redis.error_reply('WRONGTYPE the status key ' .. status .. ' is a ' .. kind ..
                           ', not a hash')
end
local st = redis.call('HMGET', status, 'state', 'worker', 'cancel', 'attempts')
local state, holder, cancel = st[1], st[2], st[3]
local attempts = tonumber(st[4]) or 0

if busy_here or (state == 'running' and holder and holder ~= worker and
                 redis.call('EXISTS', prefix .. ':worker:' .. holder) == 1) then
  local holders = processing
  if not busy_here then
    holders = prefix .. ':processing:' .. holder
  end
  redis.call('LREM', processing, 1, doc)
  if redis.call('LPOS', holders, doc) then
    return {'duplicate', attempts}
  end
  redis.call('LPUSH', queue, doc)
  return {'deferred', attempts}
end
if cancel == '1' then
  return {'cancelled', attempts}
end
if attempts >= max_attempts then
  return {'exhausted', attempts}
end

attempts = attempts + 1
redis.call('HDEL', status, 'error_code', 'error', 'finished_at', 'result_key', 'result_bytes',
           'result_sha256')
redis.call('HSETNX', status, 'queued_at', now)
redis.call('HSET', status, 'state', 'running', 'worker', worker, 'attempts', attempts,
           'started_at', now, 'updated_at', now, 'progress', '0', 'rows_written', '0',
           'lookups_total', '0', 'lookups_done', '0', 'lookups_failed', '0')
redis.call('PERSIST', status)
if event ~= '' then
  redis.call('PUBLISH', channel, event)
end
return {'started', attempts}
