--! include budget_common.lua
-- Finish a job in one atomic step: settle its budget reservation, write its result once, wake
-- its waiters, index a failure as a dead letter, record the decision, and drop the job's own
-- keys. A job can run twice (a worker died mid-job): the first result wins (SET NX) and only
-- that run notifies and records; every run settles its own reservation.
-- KEYS[1] result, [2] done list, [3] decisions stream, [4] failed zset, [5] failed-job doc,
-- [6] job envelope, [7] try counter, [8] queue zset, [9] batch done list, [10] reservation,
-- [11] reservation leases, [12] budget alert stream, [13] rollup hash of the hour,
-- [14..18] the rollup dimensions' value sets, [19] the experiment variant's units (HyperLogLog),
-- [20] the job's feedback reference
-- ARGV[1] result json, [2] ttl s, [3] job id, [4] decisions maxlen, [5] status, [6] now ms,
-- [7] failed job doc ('' = none), [8] batch ('1' = push to the batch list), [9] amount to
-- charge the reservation ('' = no reservation), [10] reservation keep s, [11] reservation id,
-- [12] n decision items, [13] n budget fragments, then the decision items (field, value, ...),
-- then the budget fragments: one '{"name":…,"scope":…,"window":…' per counter of the reservation,
-- then the rollup: n items (0 = none), then rollup ttl s, feedback ttl s, unit hash ('' = no
-- experiment), cost nano, latency ms, the 5 dimension values, their 5 caps, metric, increment, ...
-- A result whose JSON ends with "budget":"@budget"} gets those counters, settled, in its place.
-- Returns {written (0/1), settle reply ({} when there is no reservation)}.
local job, ttl, status = ARGV[3], tonumber(ARGV[2]), ARGV[5]
local rid, n_fields, n_frags = ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13])
local FIRST = 14
local ROLLUP = FIRST + n_fields + n_frags
local PLACEHOLDER = '"budget":"@budget"}'

local function usd(n)
  n = tonumber(n) or 0
  local sign = ''
  if n < 0 then sign, n = '-', -n end
  local whole = math.floor(n / 1000000000)
  return sign .. string.format('%d.%09d', whole, n - whole * 1000000000)
end

-- 1. Settle: replace the reservation by what this run cost.
local settled, doc = {}, ARGV[1]
if ARGV[9] ~= '' then
  local fired = {}
  local r, changed = settle_resv(KEYS[10], KEYS[11], KEYS[12], rid, ARGV[9], tonumber(ARGV[10]), fired)
  if r then
    local rows = states(r.keys)
    settled = {r.state, changed, r.amount, r.charged, rows, fired}
    if n_frags == #rows and string.sub(doc, -#PLACEHOLDER) == PLACEHOLDER then
      local lines = {}
      for i, row in ipairs(rows) do
        lines[i] = ARGV[FIRST - 1 + n_fields + i] .. ',"spent_usd":"' .. usd(row[2]) .. '","reserved_usd":"' ..
          usd(row[3]) .. '","limit_usd":"' .. usd(row[4]) .. '"}'
      end
      doc = string.sub(doc, 1, -#PLACEHOLDER - 1) .. '"budget":[' .. table.concat(lines, ',') .. ']}'
    end
  end
end
if string.sub(doc, -#PLACEHOLDER) == PLACEHOLDER then
  doc = string.sub(doc, 1, -#PLACEHOLDER - 1) .. '"budget":[]}'
end

-- 2. The job's own keys go, whichever run this is.
redis.call('DEL', KEYS[6], KEYS[7])
redis.call('ZREM', KEYS[8], job)

-- 3. The result, once.
if not redis.call('SET', KEYS[1], doc, 'NX', 'EX', ttl) then
  return {0, settled}
end
redis.call('RPUSH', KEYS[2], '1')
redis.call('EXPIRE', KEYS[2], ttl)
if ARGV[8] == '1' then
  redis.call('RPUSH', KEYS[9], job)
  redis.call('EXPIRE', KEYS[9], ttl)
end
if status == 'failed' then
  redis.call('ZADD', KEYS[4], ARGV[6], job)
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(ARGV[6]) - ttl * 1000)
  if ARGV[7] ~= '' then redis.call('SET', KEYS[5], ARGV[7], 'EX', ttl) end
end
if n_fields > 0 then
  local fields = {}
  for i = FIRST, FIRST - 1 + n_fields do fields[#fields + 1] = ARGV[i] end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', unpack(fields))
end

-- 4. The hour's rollup: each dimension value is kept if its set has room, else folded into
-- 'other' (bounded cardinality); then one HINCRBY per metric. The feedback reference remembers
-- where this job's quality score must go, for longer than the result lives.
local n_rollup = tonumber(ARGV[ROLLUP]) or 0
if n_rollup > 0 then
  local r = ROLLUP + 1
  local rollup_ttl, fb_ttl, unit = tonumber(ARGV[r]), tonumber(ARGV[r + 1]), ARGV[r + 2]
  local cost, latency = ARGV[r + 3], ARGV[r + 4]
  local dims = {}
  for i = 1, 5 do
    local value, cap, set = ARGV[r + 4 + i], tonumber(ARGV[r + 9 + i]), KEYS[13 + i]
    if value ~= '-' and redis.call('SISMEMBER', set, value) == 0 then
      if redis.call('SCARD', set) < cap then redis.call('SADD', set, value) else value = 'other' end
    end
    redis.call('EXPIRE', set, rollup_ttl)
    dims[i] = value
  end
  local prefix = table.concat(dims, '|') .. '|'
  for i = r + 15, ROLLUP + n_rollup - 1, 2 do
    redis.call('HINCRBY', KEYS[13], prefix .. ARGV[i], ARGV[i + 1])
  end
  redis.call('EXPIRE', KEYS[13], rollup_ttl)
  if unit ~= '' then
    redis.call('PFADD', KEYS[19], unit)
    redis.call('EXPIRE', KEYS[19], rollup_ttl)
  end
  redis.call('SET', KEYS[20], KEYS[13] .. '\t' .. prefix .. '\t' .. cost .. '\t' .. latency, 'EX', fb_ttl)
end
return {1, settled}
