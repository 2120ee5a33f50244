-- cache_put.lua: stores lookup answers in the cache the fleet shares, each
-- under its key with the service's TTL, in one step.
--
-- KEYS are P:cache:<name>:<key>, ARGV[1] the TTL in seconds, and ARGV[i + 1]
-- the body of KEYS[i]. SET replaces whatever a key held, of any type, so a
-- corrupted entry is repaired by the next answer. Returns how many.
local ttl = ARGV[1]

for i = 1, #KEYS do
    redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ttl)
end
return #KEYS
