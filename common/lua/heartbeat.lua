-- heartbeat.lua: renews this worker's heartbeat hash and registration in one
-- step, so that the hash can never be left without its TTL.
local beat = KEYS[1]
local workers = KEYS[2]
local worker = ARGV[1]
local ttl_ms = ARGV[2]
local first_pair = 3

redis.call('HSET', beat, unpack(ARGV, first_pair))
redis.call('PEXPIRE', beat, ttl_ms)
redis.call('SADD', workers, worker)
return 1
