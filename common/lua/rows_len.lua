-- rows_len.lua: the type and length of a rows_key list and, for a short one,
-- the bytes of all its elements together, in one round trip.
--
-- ARGV[1]: the most elements a list may have to be measured.
-- Returns {type} for a key that is not a list ("none" when it does not
-- exist), else {"list", length, bytes}, bytes -1 when the list is longer.
local rows = KEYS[1]
local measure_max = tonumber(ARGV[1])

local kind = redis.call('TYPE', rows).ok
if kind ~= 'list' then
  return {kind}
end
local n = redis.call('LLEN', rows)
local bytes = -1
if n <= measure_max then
  bytes = 0
  for _, item in ipairs(redis.call('LRANGE', rows, 0, -1)) do
    bytes = bytes + #item
  end
end
return {'list', n, bytes}
