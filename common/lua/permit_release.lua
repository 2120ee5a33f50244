-- permit_release.lua: gives permits of a lookup service's fleet-wide
-- semaphore back (see permit_take.lua) and, unless the holder still waits
-- for more, takes it off the waiting set.
--
-- Returns how many of the permits named were still held.
local permits = KEYS[1]
local waiting = KEYS[2]
local holder = ARGV[1]
local still_waiting = ARGV[2] == '1'
local first_permit = 3

local n = 0
for i = first_permit, #ARGV do
    n = n + redis.call('ZREM', permits, ARGV[i])
end
if not still_waiting then
    redis.call('ZREM', waiting, holder)
end
return n
