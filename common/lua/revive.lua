-- revive.lua: puts a dead letter's document back on the queue (exportctl dead
-- --requeue). The entry is named by its exact text, not by its index, so that
-- entries added meanwhile cannot make it take another one. When the document
-- has an id, its status starts again: queued, no attempts.
--
-- Returns 1, or 0 when the entry is no longer in the list.
local dead = KEYS[1]
local queue = KEYS[2]
local status = KEYS[3]
local entry = ARGV[1]
local doc = ARGV[2]
local now = ARGV[3]
local has_id = ARGV[4] == '1'

if redis.call('LREM', dead, 1, entry) == 0 then
  return 0
end
redis.call('LPUSH', queue, doc)
if has_id then
  redis.call('DEL', status)
  redis.call('HSET', status, 'state', 'queued', 'progress', '0', 'attempts', '0',
             'queued_at', now, 'updated_at', now)
end
return 1
