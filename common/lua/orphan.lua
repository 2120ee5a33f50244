-- orphan.lua: the oldest document of this worker's processing list that none
-- of its job threads holds: one whose take reply was lost, or whose end could
-- not be recorded. Read at one instant, so that a job ending meanwhile on
-- another thread cannot hide one.
--
-- ARGV[1]: '1' for a routine look, which hashes nothing while the list holds
-- no more documents than the threads do (a thread's document that has just
-- left the list may then hide an orphan until the next look; the looks after
-- a failure are not routine). ARGV[2..]: the SHA-1 (hex) of each document the
-- job threads hold, one per thread; two threads holding equal documents give
-- it twice.
-- Returns {document}, or {} when the threads hold every document in the list.
local processing = KEYS[1]
local routine = ARGV[1] == '1'

if routine and redis.call('LLEN', processing) <= #ARGV - 1 then
  return {}
end
local held = {}
for i = 2, #ARGV do
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
