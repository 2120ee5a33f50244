-- enqueue.lua: a new job as the tools enqueue it (exportctl enqueue): a fresh
-- status, queued, and the document on the queue, in one step, so that a
-- worker never takes a document whose status is missing or stale. A job whose
-- status says queued or running is left alone: the same id would then run
-- twice at once. An ended job is run again, over the same keys.
--
-- Returns {'queued', ''} or {'busy', state}.
local status = KEYS[1]
local queue = KEYS[2]
local doc = ARGV[1]
local now = ARGV[2]
local channel = ARGV[3]
local event = ARGV[4]

local kind = redis.call('TYPE', status)['ok']
if kind == 'hash' then
  local state = redis.call('HGET', status, 'state')
  if state == 'queued' or state == 'running' then
    return {'busy', state}
  end
elseif kind ~= 'none' then
  return redis.error_reply('WRONGTYPE the status key ' .. status .. ' is a ' .. kind ..
                           ', not a hash')
end
redis.call('DEL', status)
redis.call('HSET', status, 'state', 'queued', 'progress', '0', 'attempts', '0',
           'queued_at', now, 'updated_at', now)
redis.call('LPUSH', queue, doc)
redis.call('PUBLISH', channel, event)
return {'queued', ''}
