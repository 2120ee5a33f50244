-- cancel.lua: asks for a job's cancellation (exportctl cancel), without
-- creating a status for a job that has none and without touching one that
-- has ended.
--
-- Returns 'asked', 'missing', or the state of a job that has ended.
local status = KEYS[1]

if redis.call('EXISTS', status) == 0 then
  return 'missing'
end
local state = redis.call('HGET', status, 'state')
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then
  return state
end
redis.call('HSET', status, 'cancel', '1')
return 'asked'
