-- permit_take.lua: leases up to `want` permits of a lookup service's
-- fleet-wide semaphore (EXPORT_SERVICE_<NAME>_MAX_INFLIGHT) to one holder.
--
-- The semaphore is a sorted set of permits, each scored by the Redis time
-- (ms) at which its lease runs out. A permit whose lease has run out counts
-- no more, and is removed here: so a worker that dies keeps its permits for
-- at most one lease. Redis's clock decides, so the workers' clocks need not
-- agree. A holder that asks for more than it gets is noted in the waiting set
-- for `wait_ms`; the others learn from permit_renew.lua that someone waits,
-- and give back what they hold above their share.
--
-- Returns {granted, holders other than this one waiting, now in ms}. The
-- permits granted are named "<holder>:<seq>" for seq = first_seq,
-- first_seq + 1, ... (granted of them).
local permits = KEYS[1]
local waiting = KEYS[2]
local holder = ARGV[1]
local max = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local lease_ms = tonumber(ARGV[4])
local first_seq = tonumber(ARGV[5])
local wait_ms = tonumber(ARGV[6])
local now = tonumber(ARGV[7])
local keep_ms = tonumber(ARGV[8])

if now == nil then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
redis.call('ZREMRANGEBYSCORE', waiting, '-inf', now)

local free = max - redis.call('ZCARD', permits)
local granted = math.max(0, math.min(want, free))
for i = 0, granted - 1 do
    redis.call('ZADD', permits, now + lease_ms, holder .. ':' .. (first_seq + i))
end
if granted < want then
    redis.call('ZADD', waiting, now + wait_ms, holder)
else
    redis.call('ZREM', waiting, holder)
end
local others = redis.call('ZCARD', waiting)
if redis.call('ZSCORE', waiting, holder) then
    others = others - 1
end
-- Both sets go once unused for keep_ms, longer than any holder's lease: one
-- with a shorter lease must not cut the others' short.
redis.call('PEXPIRE', permits, keep_ms)
redis.call('PEXPIRE', waiting, keep_ms)
return {granted, others, now}
