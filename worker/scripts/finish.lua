--! include budget_common.lua
-- Finish a job in one atomic step: settle its budget reservation, write its result once, wake
-- its waiters, index a failure as a dead letter, record the decision, add the job to the hour's
-- rollup, and drop the job's own keys. A job can run twice (a worker died mid-job): the first
-- result wins (SET NX) and only that run notifies and records; every run settles its own
-- reservation.
-- Keys are derived here from the prefix and the job's ids (each script's keys stay derivable from
-- the job id and its queue), and lists travel packed, one argument each: a finished job costs
-- one round trip of ~16 short arguments instead of a hundred.
-- ARGV[1] key prefix, [2] job id, [3] queue zset key, [4] result json, [5] result ttl s,
-- [6] status, [7] now ms, [8] decisions stream maxlen, [9] failed job doc ('' = none),
-- [10] batch id ('' = none), [11] reservation id ('' = none), [12] amount to charge it,
-- [13] reservation keep s, [14] decision fields 'name US value US ...' ('' = none),
-- [15] budget fragments RS-separated: '{"name":…,"scope":…,"window":…' per counter,
-- [16] rollup 'hour US rollup ttl US feedback ttl US unit hash US cost US latency US 5 dimension
--      values US 5 caps US metric US increment ...' ('' = none), [17] experiment units key ('' = none)
-- (US = \31, RS = \30). A result whose JSON ends with "budget":"@budget"} gets the reservation's
-- counters, settled, in its place.
-- Returns {written (0/1), settle reply ({} when there is no reservation)}.
local P, job, queue = ARGV[1], ARGV[2], ARGV[3]
local ttl, status, now = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local batch, rid = ARGV[10], ARGV[11]
local PLACEHOLDER = '"budget":"@budget"}'

local function split(s, sep)
  local out, start = {}, 1
  if s == '' then return out end
  while true do
    local i = string.find(s, sep, start, true)
    if not i then
      out[#out + 1] = string.sub(s, start)
      return out
    end
    out[#out + 1] = string.sub(s, start, i - 1)
    start = i + 1
  end
end

local function usd(n)
  n = tonumber(n) or 0
  local sign = ''
  if n < 0 then sign, n = '-', -n end
  local whole = math.floor(n / 1000000000)
  return sign .. string.format('%d.%09d', whole, n - whole * 1000000000)
end

-- 1. Settle: replace the reservation by what this run cost.
local settled, doc = {}, ARGV[4]
if rid ~= '' then
  local fired = {}
  local r, changed = settle_resv(P .. 'resv:' .. rid, P .. 'resv-leases', P .. 'budget:alerts', rid,
    ARGV[12], tonumber(ARGV[13]), fired)
  if r then
    local rows = states(r.keys)
    settled = {r.state, changed, r.amount, r.charged, rows, fired}
    local frags = split(ARGV[15], '\30')
    if #frags == #rows and string.sub(doc, -#PLACEHOLDER) == PLACEHOLDER then
      local lines = {}
      for i, row in ipairs(rows) do
        lines[i] = frags[i] .. ',"spent_usd":"' .. usd(row[2]) .. '","reserved_usd":"' ..
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
redis.call('DEL', P .. 'job:' .. job, P .. 'try:' .. job)
redis.call('ZREM', queue, job)

-- 3. The result, once.
local result = P .. 'result:' .. job
if not redis.call('SET', result, doc, 'NX', 'EX', ttl) then
  return {0, settled}
end
local done = P .. 'done:' .. job
redis.call('RPUSH', done, '1')
redis.call('EXPIRE', done, ttl)
if batch ~= '' then
  local list = P .. 'batch:' .. batch .. ':done'
  redis.call('RPUSH', list, job)
  redis.call('EXPIRE', list, ttl)
end
if status == 'failed' then
  local failed = P .. 'failed'
  redis.call('ZADD', failed, now, job)
  redis.call('ZREMRANGEBYSCORE', failed, '-inf', tonumber(now) - ttl * 1000)
  if ARGV[9] ~= '' then redis.call('SET', P .. 'failedjob:' .. job, ARGV[9], 'EX', ttl) end
end
if ARGV[14] ~= '' then
  redis.call('XADD', P .. 'decisions', 'MAXLEN', '~', ARGV[8], '*', unpack(split(ARGV[14], '\31')))
end

-- 4. The hour's (and the day's) rollup: each dimension value is kept if its set has room, else folded into
-- 'other' (bounded cardinality); then one HINCRBY per metric. The feedback reference remembers
-- where this job's quality score must go, for longer than the result lives.
-- With rollups off (rollup ttl 0) only the feedback reference is written, with no hour, so
-- feedback is still accepted (and kept) for the feedback TTL.
if ARGV[16] ~= '' then
  local r = split(ARGV[16], '\31')
  local rollup_ttl, fb_ttl, unit = tonumber(r[2]), tonumber(r[3]), r[4]
  local hour, prefix = '', ''
  if rollup_ttl > 0 then
    hour = P .. 'rollup:' .. r[1]
    local names = {'rule', 'model', 'variant', 'task_type', 'tenant'}
    local dims = {}
    for i = 1, 5 do
      local value, cap, set = r[6 + i], tonumber(r[11 + i]), P .. 'rollup:dim:' .. names[i]
      if value ~= '-' and redis.call('SISMEMBER', set, value) == 0 then
        if redis.call('SCARD', set) < cap then redis.call('SADD', set, value) else value = 'other' end
      end
      redis.call('EXPIRE', set, rollup_ttl)
      dims[i] = value
    end
    prefix = table.concat(dims, '|') .. '|'
    -- The day tier: the same fields summed per UTC day, so a long report reads one hash a day.
    -- '_first' is the earliest hour (0-23) the day hash has counted: hours before it may hold
    -- jobs written by a worker without the day tier, and a report reads those hours instead.
    local day = P .. 'rollup:d:' .. string.sub(r[1], 1, 8)
    for i = 17, #r - 1, 2 do
      redis.call('HINCRBY', hour, prefix .. r[i], r[i + 1])
      redis.call('HINCRBY', day, prefix .. r[i], r[i + 1])
    end
    local hh = tonumber(string.sub(r[1], 9, 10))
    local first = tonumber(redis.call('HGET', day, '_first'))
    if not first or hh < first then redis.call('HSET', day, '_first', hh) end
    redis.call('EXPIRE', hour, rollup_ttl)
    redis.call('EXPIRE', day, rollup_ttl)
    if unit ~= '' and ARGV[17] ~= '' then
      redis.call('PFADD', ARGV[17], unit)
      redis.call('EXPIRE', ARGV[17], rollup_ttl)
    end
  end
  redis.call('SET', P .. 'fbref:' .. job, hour .. '\t' .. prefix .. '\t' .. r[5] .. '\t' .. r[6], 'EX', fb_ttl)
end
return {1, settled}
