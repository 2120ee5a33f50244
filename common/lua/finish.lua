-- finish.lua: a job's end, all or nothing. It writes only while the document
-- is still in this worker's processing list, and every check that can fail
-- runs before the first write (Redis does not undo a script's writes when it
-- stops on an error).
--
-- Without has_status the status and the result are not touched (the caller
-- may name any of its keys for them); the upload is deleted.
--
-- The result is the upload, renamed (has_result 1), or the workbook itself,
-- given whole in ARGV[12] when it is small (has_result 2): then one call both
-- stores it and ends the job.
--
-- Returns 1 when this call ended the job, 2 when an earlier call of this same
-- run already had (its reply was lost), 0 when the job is no longer this
-- worker's (nothing written), -1 when the uploaded result has gone (expired or
-- evicted): nothing written, the job must run again.
local processing = KEYS[1]
local status = KEYS[2]
local stats = KEYS[3]
local upload = KEYS[4]
local result = KEYS[5]
local rows = KEYS[6]
local dead = KEYS[7]
local uploads = KEYS[8]
local doc = ARGV[1]
local worker = ARGV[2]
local attempt = ARGV[3]
local ttl_ms = tonumber(ARGV[4])
local channel = ARGV[5]
local event = ARGV[6]
local has_status = ARGV[7] == '1'
local has_result = ARGV[8] ~= '0'
local inline = ARGV[8] == '2'
local del_rows = ARGV[9] == '1'
local dead_entry = ARGV[10]
-- Nonzero when doc is only the head of a document too large for the worker
-- to take in: the oldest of the processing list, of this many bytes.
local doc_total = tonumber(ARGV[11])
local workbook = ARGV[12]
local nstats = tonumber(ARGV[13])
local first_stat = 14
local first_field = first_stat + 2 * nstats

local function type_of(key)
  return redis.call('TYPE', key)['ok']
end

local function refuse(key, kind, want)
  return redis.error_reply('WRONGTYPE ' .. key .. ' is a ' .. kind .. ', not a ' .. want)
end

local function still_here()
  if doc_total == 0 then
    return redis.call('LPOS', processing, doc)
  end
  local oldest = redis.call('LINDEX', processing, -1)
  return oldest and #oldest == doc_total and string.sub(oldest, 1, #doc) == doc
end

if not still_here() then
  -- Ended already by this run, whose reply was lost?
  if has_status then
    local st = redis.call('HMGET', status, 'worker', 'attempts', 'state')
    if st[1] == worker and st[2] == attempt and st[3] ~= 'running' and st[3] ~= 'queued' then
      return 2
    end
  elseif dead_entry ~= '' and redis.call('LINDEX', dead, 0) == dead_entry then
    return 2
  end
  return 0
end

-- Checks.
local kind = type_of(stats)
if kind ~= 'none' and kind ~= 'hash' then
  return refuse(stats, kind, 'hash')
end
for k = 0, nstats - 1 do
  local name = ARGV[first_stat + 2 * k]
  local cur = redis.call('HGET', stats, name)
  -- What HINCRBY takes (no leading zeros, no -0), and small enough that the
  -- increment cannot overflow.
  if cur and not (cur == '0' or (string.match(cur, '^%-?[1-9]%d*$') and
                                 #(string.gsub(cur, '^%-', '')) <= 18)) then
    return redis.error_reply('ERR the field ' .. name .. ' of ' .. stats ..
                             ' is not an integer')
  end
end
kind = type_of(uploads)
if kind ~= 'none' and kind ~= 'set' then
  return refuse(uploads, kind, 'set')
end
if dead_entry ~= '' then
  kind = type_of(dead)
  if kind ~= 'none' and kind ~= 'list' then
    return refuse(dead, kind, 'list')
  end
end
if has_status then
  kind = type_of(status)
  if kind ~= 'none' and kind ~= 'hash' then
    return refuse(status, kind, 'hash')
  end
  if has_result and not inline and redis.call('EXISTS', upload) == 0 then
    return -1
  end
end

-- Writes.
for k = 0, nstats - 1 do
  local at = first_stat + 2 * k
  redis.call('HINCRBY', stats, ARGV[at], ARGV[at + 1])
end
if has_status then
  if inline then
    redis.call('SET', result, workbook, 'PX', ttl_ms)
  elseif has_result then
    redis.call('RENAME', upload, result)
    redis.call('PEXPIRE', result, ttl_ms)
  else
    redis.call('DEL', upload, result)
    redis.call('HDEL', status, 'result_key', 'result_bytes', 'result_sha256')
  end
  if first_field <= #ARGV then
    redis.call('HSET', status, unpack(ARGV, first_field))
  end
  redis.call('PEXPIRE', status, ttl_ms)
else
  redis.call('DEL', upload)
end
redis.call('SREM', uploads, upload)
if del_rows then
  redis.call('DEL', rows)
end
if dead_entry ~= '' then
  redis.call('LPUSH', dead, dead_entry)
end
if doc_total == 0 then
  redis.call('LREM', processing, 1, doc)
else
  redis.call('RPOP', processing)
end
if event ~= '' then
  redis.call('PUBLISH', channel, event)
end
return 1
