-- rows.lua: a window of a rows_key list, refused whole when one element is
-- longer than the worker takes, so that no such element is ever copied to it.
-- The window ends early once its elements reach budget bytes together (it
-- always holds at least one): wide rows make short windows, so what one
-- reply carries stays bounded. Elements are read 64 at a time, so that Redis
-- does not copy more than that past the budget either.
--
-- Returns {0, element...}, or {1, index, bytes} for the first element that is
-- too long (index counts from 0 in the whole list).
local rows = KEYS[1]
local start = tonumber(ARGV[1])
local stop = tonumber(ARGV[2])
local max_bytes = tonumber(ARGV[3])
local budget = tonumber(ARGV[4])
if start < 0 or stop < 0 then -- counted from the end, as LRANGE does
  local len = redis.call('LLEN', rows)
  if start < 0 then start = math.max(0, len + start) end
  if stop < 0 then stop = len + stop end
end

local out = {0}
local total = 0
local at = start
while at <= stop do
  local items = redis.call('LRANGE', rows, at, math.min(stop, at + 63))
  if #items == 0 then
    break
  end
  for i, item in ipairs(items) do
    if #out > 1 and total + #item > budget then
      return out -- the rest, this one included, is for the next call
    end
    if #item > max_bytes then
      return {1, at + i - 1, #item}
    end
    total = total + #item
    out[#out + 1] = item
  end
  at = at + #items
end
return out
