-- Helpers prepended to every budget script (one chunk per script, so no cross-script state).
-- Money arrives and leaves as decimal strings and moves only through HINCRBY (exact int64);
-- Lua numbers are doubles, used only to compare (exact below 2^53 nano, see config.MAX_LIMIT_NANO).
-- Budget keys are read from the reservation hash, so these scripts need a single Redis node.

local function now_ms(given)
  if given and given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function num(v)
  if not v then return 0 end
  return tonumber(v)
end

-- The counters a reservation holds, stored as fields key:1..key:n of its hash.
local function resv_keys(resv)
  local keys = {}
  local n = num(redis.call('HGET', resv, 'nkeys'))
  for i = 1, n do keys[i] = redis.call('HGET', resv, 'key:' .. i) end
  return keys
end

local function states(keys)
  local out = {}
  for i, key in ipairs(keys) do
    local v = redis.call('HMGET', key, 'spent', 'reserved', 'limit', 'name', 'scope', 'window')
    out[i] = {key, v[1] or '0', v[2] or '0', v[3] or '0', v[4] or '', v[5] or '', v[6] or ''}
  end
  return out
end

-- After spent grew: emit each threshold (percent of limit) reached for the first time in this
-- window. The marker is a field of the counter itself, so it expires and resets with it.
local function check_alerts(key, job, stream, fired)
  local v = redis.call('HMGET', key, 'spent', 'limit', 'alerts', 'name', 'scope', 'window')
  local spent, limit = num(v[1]), num(v[2])
  if limit <= 0 or not v[3] then return end
  for t in string.gmatch(v[3], '%d+') do
    if spent * 100 >= tonumber(t) * limit
        and redis.call('HSETNX', key, 'alerted:' .. t, v[1]) == 1 then
      local name, scope, window = v[4] or '', v[5] or '', v[6] or ''
      redis.call('XADD', stream, 'MAXLEN', '~', '10000', '*',
        'budget', name, 'scope', scope, 'window', window, 'threshold', t,
        'spent_nano', v[1], 'limit_nano', v[2], 'key', key, 'job_id', job)
      fired[#fired + 1] = {key, name, scope, window, t, v[1], v[2], job}
    end
  end
end

-- Add `amount` (a decimal string) to spent on every live counter, checking thresholds.
local function charge(keys, amount, job, stream, fired)
  if amount == '0' then return end
  for _, key in ipairs(keys) do
    if redis.call('EXISTS', key) == 1 then
      redis.call('HINCRBY', key, 'spent', amount)
      check_alerts(key, job, stream, fired)
    end
  end
end

-- Close an open reservation: give back what it held, charge `charged`, leave the lease set.
-- A counter that no longer exists (expired long after its window) is skipped, not recreated.
local function close(resv, job, leases, stream, charged, new_state, keep_s, fired)
  local keys = resv_keys(resv)
  local amount = redis.call('HGET', resv, 'amount')
  if amount ~= '0' then
    for _, key in ipairs(keys) do
      if redis.call('EXISTS', key) == 1 then
        redis.call('HINCRBY', key, 'reserved', '-' .. amount)
      end
    end
  end
  charge(keys, charged, job, stream, fired)
  redis.call('HSET', resv, 'state', new_state, 'charged', charged, 'closed', now_ms())
  redis.call('EXPIRE', resv, keep_s)
  redis.call('ZREM', leases, job)
  return keys
end

