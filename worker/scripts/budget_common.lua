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

-- A reservation hash as a table (nil if absent); its counters are fields key:1..key:n.
local function load_resv(resv)
  local flat = redis.call('HGETALL', resv)
  if #flat == 0 then return nil end
  local r = {}
  for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
  r.keys = {}
  for i = 1, num(r.nkeys) do r.keys[i] = r['key:' .. i] end
  return r
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
-- window. Field `alerted` keeps the highest threshold already emitted; it lives in the counter
-- itself, so it expires and resets with it.
local function check_alerts(key, job, stream, fired)
  local v = redis.call('HMGET', key, 'spent', 'limit', 'alerts', 'alerted', 'name', 'scope', 'window')
  local spent, limit, done = num(v[1]), num(v[2]), num(v[4])
  if limit <= 0 or not v[3] then return end
  local top = done
  for t in string.gmatch(v[3], '%d+') do
    local pct = tonumber(t)
    if pct > done and spent * 100 >= pct * limit then
      local name, scope, window = v[5] or '', v[6] or '', v[7] or ''
      redis.call('XADD', stream, 'MAXLEN', '~', '10000', '*',
        'budget', name, 'scope', scope, 'window', window, 'threshold', t,
        'spent_nano', v[1], 'limit_nano', v[2], 'key', key, 'job_id', job)
      fired[#fired + 1] = {key, name, scope, window, t, v[1], v[2], job}
      if pct > top then top = pct end
    end
  end
  if top > done then redis.call('HSET', key, 'alerted', top) end
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

-- Close an open reservation `r`: give back what it held, charge `charged`, leave the lease set.
-- A counter that no longer exists (expired long after its window) is skipped, not recreated.
local function close(resv, r, job, leases, stream, charged, new_state, keep_s, fired)
  for _, key in ipairs(r.keys) do
    if redis.call('EXISTS', key) == 1 then
      if r.amount ~= '0' then redis.call('HINCRBY', key, 'reserved', '-' .. r.amount) end
      if charged ~= '0' then
        redis.call('HINCRBY', key, 'spent', charged)
        check_alerts(key, job, stream, fired)
      end
    end
  end
  redis.call('HSET', resv, 'state', new_state, 'charged', charged, 'closed', now_ms())
  redis.call('EXPIRE', resv, keep_s)
  redis.call('ZREM', leases, job)
end

-- Replace a reservation by the actual cost, once (shared by settle.lua and finish.lua).
-- open      -> give back the reservation, charge `actual` (even above it: real money), close.
-- settled   -> return the recorded outcome, change nothing.
-- reclaimed -> the lease expired and the full reservation was charged; the first late report
--              charges only what it exceeds that by (never refunds), later ones change nothing.
-- Returns the reservation table (nil if there is none) and whether anything changed.
local function settle_resv(resv, leases, stream, job, actual, keep_s, fired)
  local r = load_resv(resv)
  if not r then return nil, 0 end
  local changed = 0
  if r.state == 'open' then
    close(resv, r, job, leases, stream, actual, 'settled', keep_s, fired)
    r.state, r.charged, changed = 'settled', actual, 1
  elseif r.state == 'reclaimed' and not r.late_actual then
    redis.call('HSET', resv, 'late_actual', actual)
    local extra = tonumber(actual) - tonumber(r.charged)
    if extra > 0 then
      charge(r.keys, string.format('%d', extra), job, stream, fired)
      redis.call('HSET', resv, 'charged', actual)
      r.charged, changed = actual, 1
    end
  end
  return r, changed
end
