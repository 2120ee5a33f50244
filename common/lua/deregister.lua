-- deregister.lua: deletes the heartbeat and leaves P:workers, unless jobs are
-- still in this worker's processing list: then it stays registered, so that
-- recovery puts them back once the heartbeat is gone.
local beat = KEYS[1]
local workers = KEYS[2]
local processing = KEYS[3]
local worker = ARGV[1]

redis.call('DEL', beat)
if redis.call('LLEN', processing) == 0 then
  redis.call('SREM', workers, worker)
end
return 1
