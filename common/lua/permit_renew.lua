-- permit_renew.lua: renews the leases of a holder's permits of a lookup
-- service's fleet-wide semaphore (see permit_take.lua), and tells it whether
-- other holders wait.
--
-- A permit whose lease has run out, or that is gone, is not renewed: it may
-- already be someone else's, so the holder must drop it.
--
-- Returns {holders other than this one waiting, now in ms, then 1 (renewed)
-- or 0 (lost) for each permit named}.
local permits = KEYS[1]
local waiting = KEYS[2]
local holder = ARGV[1]
local lease_ms = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local keep_ms = tonumber(ARGV[4]) -- as in permit_take.lua
local first_permit = 5

if now == nil then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
redis.call('ZREMRANGEBYSCORE', waiting, '-inf', now)

local out = {0, now}
for i = first_permit, #ARGV do
    if redis.call('ZSCORE', permits, ARGV[i]) then
        redis.call('ZADD', permits, 'XX', now + lease_ms, ARGV[i])
        out[#out + 1] = 1
    else
        out[#out + 1] = 0
    end
end
if #ARGV >= first_permit then
    redis.call('PEXPIRE', permits, keep_ms)
end
local others = redis.call('ZCARD', waiting)
if redis.call('ZSCORE', waiting, holder) then
    others = others - 1
end
out[1] = others
return out
