-- release.lua: puts every job of this worker's own processing list back on
-- the queue, emptied from its newest end as recovery does, and deletes this
-- worker's partial uploads (a worker that stops while a job's end could not
-- be recorded).
--
-- Returns the number of jobs moved.
local processing = KEYS[1]
local queue = KEYS[2]
local uploads = KEYS[3]

local moved = 0
while true do
  local doc = redis.call('LPOP', processing)
  if not doc then
    break
  end
  redis.call('RPUSH', queue, doc)
  moved = moved + 1
end
for _, key in ipairs(redis.call('SMEMBERS', uploads)) do
  redis.call('DEL', key)
end
redis.call('DEL', uploads)
return moved
