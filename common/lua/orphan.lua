-- orphan.lua: the oldest document of this worker's processing list that none
-- of its job threads holds: one whose take reply was lost, or whose end could
-- not be recorded. Read at one instant, so that a job ending meanwhile on
-- another thread cannot hide one.
--
-- ARGV: the SHA-1 (hex) of each document the job threads hold, one per
-- thread; two threads holding equal documents give it twice.
-- Returns {document}, or {} when the threads hold every document in the list.
local processing = KEYS[1]

local held = {}
for i = 1, #ARGV do
  held[ARGV[i]] = (held[ARGV[i]] or 0) + 1
end
local docs = redis.call('LRANGE', processing, 0, -1)
for i = #docs, 1, -1 do
  local digest = redis.sha1hex(docs[i])
  if (held[digest] or 0) > 0 then
    held[digest] = held[digest] - 1
  else
    return {docs[i]}
  end
end
return {}
