-- Enqueue many jobs atomically, idempotent per job id, under a queue depth cap.
-- KEYS[1] = queue zset. ARGV[1] = key prefix ('routeq:'), ARGV[2] = max depth (0 = no cap),
-- ARGV[3] = wake channel ('' = none), ARGV[4] = job ttl ms, then per job: id, score, payload.
-- An id whose job is queued or running, or whose result exists, is a duplicate. A new job drops
-- any stale wake-up token and try count its id may have from an earlier, expired life.
-- Returns {added, duplicates, refused_full} as three lists of positions (1-based).
local queue = KEYS[1]
local prefix = ARGV[1]
local max_depth = tonumber(ARGV[2])
local wake = ARGV[3]
local ttl = tonumber(ARGV[4])
local added, dups, full = {}, {}, {}
local depth = 0
if max_depth > 0 then depth = redis.call('ZCARD', queue) end
local n = (#ARGV - 4) / 3
for i = 1, n do
  local base = 4 + (i - 1) * 3
  local id, score, payload = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  local job_key = prefix .. 'job:' .. id
  if redis.call('EXISTS', job_key, prefix .. 'result:' .. id) > 0 then
    dups[#dups + 1] = i
  elseif max_depth > 0 and depth >= max_depth then
    full[#full + 1] = i
  else
    redis.call('SET', job_key, payload, 'PX', ttl)
    redis.call('DEL', prefix .. 'done:' .. id, prefix .. 'try:' .. id)
    redis.call('ZADD', queue, score, id)
    depth = depth + 1
    added[#added + 1] = i
  end
end
if #added > 0 and wake ~= '' then redis.call('PUBLISH', wake, #added) end
return {added, dups, full}
