-- peek.lua: a part of the oldest document of this worker's processing list,
-- and its length, for a document too large for the worker to take in whole.
--
-- Returns {length, the n bytes from offset}, or {0, ''} when the list is
-- empty.
local processing = KEYS[1]
local offset = tonumber(ARGV[1])
local n = tonumber(ARGV[2])

local doc = redis.call('LINDEX', processing, -1)
if not doc then
  return {0, ''}
end
return {#doc, string.sub(doc, offset + 1, offset + n)}
