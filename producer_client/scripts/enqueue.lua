-- Enqueue many jobs atomically, idempotent per job id, under a queue depth cap.
-- KEYS[1] = queue zset. ARGV[1] = key prefix ('routeq:'), ARGV[2] = max depth (0 = no cap),
-- ARGV[3] = wake channel ('' = none), ARGV[4] = job ttl ms, ARGV[5] = score (enqueue time, ms,
-- the same for every job of a call), then per job: id, payload.
-- An id whose job is queued or running, or whose result exists, is a duplicate. A new job drops
-- any stale wake-up token and try count its id may have from an earlier, expired life.
-- Returns {added, duplicates, refused_full} as three lists of positions (1-based).
local queue = KEYS[1]
local prefix = ARGV[1]
local max_depth = tonumber(ARGV[2])
local wake = ARGV[3]
local ttl = tonumber(ARGV[4])
local score = ARGV[5]
local added, dups, full = {}, {}, {}
local depth = 0
if max_depth > 0 then depth = redis.call('ZCARD', queue) end
local n = (#ARGV - 5) / 2
local stale, members = {}, {}
-- Many keys per DEL and many members per ZADD: one command per batch, not one per job.
local function flush(force)
  if #stale >= 1000 or (force and #stale > 0) then redis.call('DEL', unpack(stale)); stale = {} end
  if #members >= 1000 or (force and #members > 0) then redis.call('ZADD', queue, unpack(members)); members = {} end
end
for i = 1, n do
  local base = 5 + (i - 1) * 2
  local id, payload = ARGV[base + 1], ARGV[base + 2]
  local job_key = prefix .. 'job:' .. id
  if redis.call('EXISTS', job_key, prefix .. 'result:' .. id) > 0 then
    dups[#dups + 1] = i
  elseif max_depth > 0 and depth >= max_depth then
    full[#full + 1] = i
  else
    redis.call('SET', job_key, payload, 'PX', ttl)
    stale[#stale + 1] = prefix .. 'done:' .. id
    stale[#stale + 1] = prefix .. 'try:' .. id
    members[#members + 1] = score
    members[#members + 1] = id
    depth = depth + 1
    added[#added + 1] = i
    flush(false)
  end
end
flush(true)
if #added > 0 and wake ~= '' then redis.call('PUBLISH', wake, #added) end
return {added, dups, full}
