--! include budget_common.lua
-- Reserve `amount` on every counter, or on none.
-- KEYS: resv, leases, lines index (zset: counter key -> expiry), counter 1..n
-- ARGV: job_id, amount, lease_ms, keep_s, mode, then per counter: limit, expire_at|'', name,
--       scope, window, alerts ("50,80,100")
-- mode 'new':     a job id that already has a reservation (any state) gets it back unchanged: a
--                 job delivered twice must not hold twice.
-- mode 'replace': an open reservation of this job id is given back first (the job's routing
--                 changed once it saw fresher counters); then as 'new', on the counters given.
-- mode 'add':     the open reservation of this job id grows by `amount` on its own counters, if
--                 they all have room (an upstream attempt whose outcome is unknown may have been
--                 billed, so a retry needs a fresh worst case held).
-- Replies: {'reserved'|'replayed'|'added', state, amount, deadline, rows} or {'denied', i, spent,
-- reserved} (i-th counter short) or {'none'} ('add' without an open reservation).
local resv, leases, index = KEYS[1], KEYS[2], KEYS[3]
local job, amount, lease_ms, keep_s, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local amt = tonumber(amount)

local held = load_resv(resv)
if mode == 'add' then
  if not held or held.state ~= 'open' then return {'none'} end
  if amt > 0 then
    for i, key in ipairs(held.keys) do
      local v = redis.call('HMGET', key, 'spent', 'reserved', 'limit')
      if num(v[1]) + num(v[2]) + amt > num(v[3]) then
        return {'denied', i, v[1] or '0', v[2] or '0'}
      end
    end
    for _, key in ipairs(held.keys) do redis.call('HINCRBY', key, 'reserved', amount) end
    redis.call('HINCRBY', resv, 'amount', amount)
  end
  held = load_resv(resv)
  return {'added', held.state, held.amount, held.deadline or '', states(held.keys)}
end
if held and mode == 'replace' and held.state == 'open' then
  for _, key in ipairs(held.keys) do
    if redis.call('EXISTS', key) == 1 and held.amount ~= '0' then
      redis.call('HINCRBY', key, 'reserved', '-' .. held.amount)
    end
  end
  redis.call('DEL', resv)
  redis.call('ZREM', leases, job)
  held = nil
end
if held then
  return {'replayed', held.state, held.amount, held.deadline or '', states(held.keys)}
end

local keys = {}
for i = 4, #KEYS do keys[#keys + 1] = KEYS[i] end
local base0 = 5

-- EXPIREAT on a past instant deletes the key at once: the counter would vanish with the money
-- in it. A window that has already ended (a caller's clock far from Redis's) is refused.
local now = now_ms()
for i = 1, #keys do
  local expire = ARGV[base0 + (i - 1) * 6 + 2]
  if expire ~= '' and tonumber(expire) * 1000 <= now then
    return redis.error_reply('ERR budget counter ' .. keys[i] .. ' would expire at ' .. expire ..
      ' (unix s), which is already past on the Redis clock (' .. math.floor(now / 1000) ..
      '): its window ended; check the worker clock')
  end
end

-- A zero amount cannot overshoot anything, so it is never denied.
if amt > 0 then
  for i, key in ipairs(keys) do
    local v = redis.call('HMGET', key, 'spent', 'reserved')
    if num(v[1]) + num(v[2]) + amt > tonumber(ARGV[base0 + (i - 1) * 6 + 1]) then
      return {'denied', i, v[1] or '0', v[2] or '0'}
    end
  end
end

local deadline = now + lease_ms
local fields = {'state', 'open', 'amount', amount, 'nkeys', #keys, 'created', now, 'deadline', deadline}
local rows = {}
for i, key in ipairs(keys) do
  local b = base0 + (i - 1) * 6
  local reserved = redis.call('HINCRBY', key, 'reserved', amount)
  local spent = redis.call('HINCRBY', key, 'spent', 0)
  redis.call('HSET', key, 'limit', ARGV[b + 1], 'name', ARGV[b + 3], 'scope', ARGV[b + 4],
    'window', ARGV[b + 5], 'alerts', ARGV[b + 6])
  if ARGV[b + 2] ~= '' then
    redis.call('EXPIREAT', key, ARGV[b + 2])
    redis.call('ZADD', index, ARGV[b + 2], key)
  else
    redis.call('ZADD', index, '+inf', key)
  end
  fields[#fields + 1] = 'key:' .. i
  fields[#fields + 1] = key
  rows[i] = {key, spent, reserved, ARGV[b + 1], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]}
end
redis.call('HSET', resv, unpack(fields))
redis.call('PEXPIREAT', resv, deadline + keep_s * 1000)
redis.call('ZADD', leases, deadline, job)
return {'reserved', 'open', amount, tostring(deadline), rows}
