-- Claim up to N ready jobs across queues in priority order, and hand back all each one needs,
-- in one round trip (arq reads each job in four: WATCH, GET, INCR its try count, MULTI).
-- A claimed job stays in its queue zset, but its score moves to the moment its claim expires:
-- running jobs leave the ready range, so each claim reads only ready ids, and a job whose worker
-- died becomes ready again when its claim runs out. The score is the only lease.
-- KEYS = queue zsets, highest priority first.
-- ARGV[1] = now ms, ARGV[2] = claim ms, ARGV[3] = key prefix, ARGV[4] = try counter ttl ms,
-- ARGV[5..] = max jobs to claim from each queue (in KEYS order).
-- Returns {control, jobs}: control = {active rules version, active catalog version} (false when
-- none), so a worker notices an activation it missed on pub/sub at no extra cost; jobs is a flat
-- list of id, queue index (1-based), try number, envelope (false if gone), has a result (0/1).
local now, claim_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local prefix, try_ttl = ARGV[3], tonumber(ARGV[4])
local jobs = {}
local claimed_total = 0
for q = 1, #KEYS do
  local want = tonumber(ARGV[4 + q]) - claimed_total
  if want > 0 then
    local ids = redis.call('ZRANGEBYSCORE', KEYS[q], '-inf', now, 'LIMIT', 0, want)
    for _, id in ipairs(ids) do
      redis.call('ZADD', KEYS[q], 'XX', now + claim_ms, id)
      local try_key = prefix .. 'try:' .. id
      local try = redis.call('INCR', try_key)
      redis.call('PEXPIRE', try_key, try_ttl)
      -- Checked on every try: an id queued again by hand (not through enqueue.lua, which refuses
      -- it) after its result was written must not run, and be billed, a second time.
      local has_result = redis.call('EXISTS', prefix .. 'result:' .. id)
      jobs[#jobs + 1] = id
      jobs[#jobs + 1] = q
      jobs[#jobs + 1] = try
      jobs[#jobs + 1] = redis.call('GET', prefix .. 'job:' .. id)
      jobs[#jobs + 1] = has_result
    end
    claimed_total = claimed_total + #ids
  end
end
local control = {redis.call('GET', prefix .. 'rules:active'), redis.call('GET', prefix .. 'catalog:active')}
return {control, jobs}
