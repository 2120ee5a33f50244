-- rate_take.lua: reserves up to `want` request slots of a lookup service's
-- fleet-wide pace (EXPORT_SERVICE_<NAME>_RATE), by GCRA, the generic cell
-- rate algorithm.
--
-- The key is a hash whose field `tat` holds the theoretical arrival time
-- (TAT): the Redis time, in microseconds, at which the next free slot begins
-- (a hash, so that the worker's Redis user needs no GET). Slots are `interval`
-- apart (a million over the rate), so no two requests of the fleet share one
-- and any one second holds at most `rate` slots. The pace is kept by Redis's
-- clock alone, refilled by time, with no timer anywhere. Only slots that
-- begin within `horizon` of now are handed out, so that no worker holds slots
-- far ahead that it might not use; a slot that passes unused is lost, and
-- the pace never bursts to make up for it.
--
-- Returns {granted, the first slot's time, now}, in microseconds: the slots
-- granted begin at first, first + interval, ...
local key = KEYS[1]
local interval = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local now = tonumber(ARGV[4])

if now == nil then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('HGET', key, 'tat') or '')
if tat == nil or tat < now then
    tat = now
end
local granted = 0
if tat <= now + horizon then
    granted = math.min(want, math.floor((now + horizon - tat) / interval) + 1)
end
if granted > 0 then
    local next_tat = tat + granted * interval
    redis.call('HSET', key, 'tat', string.format('%d', next_tat))
    redis.call('PEXPIRE', key, math.floor((next_tat - now) / 1000) + 1000)
end
return {granted, tat, now}
