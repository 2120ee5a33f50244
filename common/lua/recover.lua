-- recover.lua: puts the jobs of every registered worker whose heartbeat has
-- expired back on the queue, at the end taken next, deletes their partial
-- uploads and unregisters them. One atomic script, so two live workers
-- recovering at once cannot move a job twice.
--
-- The processing lists, heartbeats and upload sets of other workers cannot be
-- declared as KEYS before the script reads P:workers; they share the prefix,
-- and so the prefix's hash slot on a cluster. A processing list is emptied
-- from its newest end, so that its oldest job ends up taken first.
--
-- Returns the number of jobs moved.
local workers = KEYS[1]
local queue = KEYS[2]
local prefix = ARGV[1]

local moved = 0
for _, wid in ipairs(redis.call('SMEMBERS', workers)) do
  if redis.call('EXISTS', prefix .. ':worker:' .. wid) == 0 then
    local plist = prefix .. ':processing:' .. wid
    while true do
      local doc = redis.call('LPOP', plist)
      if not doc then
        break
      end
      redis.call('RPUSH', queue, doc)
      moved = moved + 1
    end
    local uploads = prefix .. ':uploads:' .. wid
    for _, key in ipairs(redis.call('SMEMBERS', uploads)) do
      redis.call('DEL', key)
    end
    redis.call('DEL', uploads)
    redis.call('SREM', workers, wid)
  end
end
return moved
