-- rows_len.lua: the type and length of a rows_key list and, for a short one,
-- the bytes of all its elements together, in one round trip.
--
-- ARGV[1]: the most elements a list may have to be measured.
-- ARGV[2]: the most bytes worth counting: past them the measure stops.
-- Returns {type} for a key that is not a list ("none" when it does not
-- exist), else {"list", length, bytes}, bytes -1 when the list is longer
-- than either bound. The list is read 64 elements at a time, so that a list
-- of large elements costs Redis no more than the bytes bound and one step.
local rows = KEYS[1]
local measure_max = tonumber(ARGV[1])
local bytes_max = tonumber(ARGV[2])

local kind = redis.call('TYPE', rows).ok
if kind ~= 'list' then
  return {kind}
end
local n = redis.call('LLEN', rows)
if n > measure_max then
  return {'list', n, -1}
end
local bytes = 0
for first = 0, n - 1, 64 do
  for _, item in ipairs(redis.call('LRANGE', rows, first, first + 63)) do
    bytes = bytes + #item
  end
  if bytes > bytes_max then
    return {'list', n, -1}
  end
end
return {'list', n, bytes}
