-- rows.lua: a window of a rows_key list, refused whole when one element is
-- longer than the worker takes, so that no such element is ever copied to it.
--
-- Returns {0, element...}, or {1, index, bytes} for the first element that is
-- too long (index counts from 0 in the whole list).
local rows = KEYS[1]
local start = tonumber(ARGV[1])
local stop = tonumber(ARGV[2])
local max_bytes = tonumber(ARGV[3])

local items = redis.call('LRANGE', rows, start, stop)
for i, item in ipairs(items) do
  if #item > max_bytes then
    return {1, start + i - 1, #item}
  end
end
table.insert(items, 1, 0)
return items
