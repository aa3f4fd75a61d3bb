-- Claim up to N ready jobs across queues in priority order, in one round trip.
-- Replaces arq's per-id WATCH/EXISTS/ZSCORE/MULTI claim (4 round trips per id, repeated for every
-- in-flight id at the head of the queue). A claimed job stays in its queue zset, as arq expects,
-- but its score moves to the moment its in-progress key expires: running jobs leave the ready
-- range (so each claim reads only ready ids), and a job whose worker died becomes ready again
-- exactly when arq would re-run it.
-- KEYS = queue zsets, highest priority first.
-- ARGV[1] = now ms, ARGV[2] = ids to scan per queue, ARGV[3] = in-progress ttl ms,
-- ARGV[4..] = max jobs to claim from each queue (same order as KEYS).
-- Returns a flat list: id, score, queue index (1-based), ...
local now, scan, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
local claimed_total = 0
for q = 1, #KEYS do
  local want = tonumber(ARGV[3 + q]) - claimed_total
  if want > 0 then
    local got = 0
    local ids = redis.call('ZRANGEBYSCORE', KEYS[q], '-inf', now, 'WITHSCORES', 'LIMIT', 0, scan)
    for i = 1, #ids, 2 do
      local key = 'arq:in-progress:' .. ids[i]
      if redis.call('EXISTS', key) == 0 then
        redis.call('SET', key, '1', 'PX', ttl)
        redis.call('ZADD', KEYS[q], 'XX', tonumber(now) + ttl, ids[i])
        out[#out + 1] = ids[i]
        out[#out + 1] = ids[i + 1]
        out[#out + 1] = q
        got = got + 1
        if got >= want then break end
      end
    end
    claimed_total = claimed_total + got
  end
end
return out
