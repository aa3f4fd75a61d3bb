-- Reserve `amount` on every counter, or on none.
-- KEYS: resv, leases, counter 1..n
-- ARGV: job_id, amount, lease_ms, keep_s, then per counter: limit, expire_at|'', name, scope,
--       window, alerts ("50,80,100")
-- A job id that already has a reservation (any state) gets it back unchanged: a job delivered
-- twice must not hold twice.
local resv, leases = KEYS[1], KEYS[2]
local job, amount, lease_ms, keep_s = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

local held = load_resv(resv)
if held then
  return {'replayed', held.state, held.amount, held.deadline or '', states(held.keys)}
end

local keys = {}
for i = 3, #KEYS do keys[#keys + 1] = KEYS[i] end

-- EXPIREAT on a past instant deletes the key at once: the counter would vanish with the money
-- in it. A window that has already ended (a caller's clock far from Redis's) is refused.
local now = now_ms()
for i = 1, #keys do
  local expire = ARGV[4 + (i - 1) * 6 + 2]
  if expire ~= '' and tonumber(expire) * 1000 <= now then
    return redis.error_reply('ERR budget counter ' .. keys[i] .. ' would expire at ' .. expire ..
      ' (unix s), which is already past on the Redis clock (' .. math.floor(now / 1000) ..
      '): its window ended; check the worker clock')
  end
end

-- A zero amount cannot overshoot anything, so it is never denied.
local amt = tonumber(amount)
if amt > 0 then
  for i, key in ipairs(keys) do
    local v = redis.call('HMGET', key, 'spent', 'reserved')
    if num(v[1]) + num(v[2]) + amt > tonumber(ARGV[4 + (i - 1) * 6 + 1]) then
      return {'denied', i, v[1] or '0', v[2] or '0'}
    end
  end
end

local deadline = now + lease_ms
local fields = {'state', 'open', 'amount', amount, 'nkeys', #keys, 'created', now, 'deadline', deadline}
local rows = {}
for i, key in ipairs(keys) do
  local b = 4 + (i - 1) * 6
  local reserved = redis.call('HINCRBY', key, 'reserved', amount)
  local spent = redis.call('HINCRBY', key, 'spent', 0)
  redis.call('HSET', key, 'limit', ARGV[b + 1], 'name', ARGV[b + 3], 'scope', ARGV[b + 4],
    'window', ARGV[b + 5], 'alerts', ARGV[b + 6])
  if ARGV[b + 2] ~= '' then redis.call('EXPIREAT', key, ARGV[b + 2]) end
  fields[#fields + 1] = 'key:' .. i
  fields[#fields + 1] = key
  rows[i] = {key, spent, reserved, ARGV[b + 1], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5]}
end
redis.call('HSET', resv, unpack(fields))
redis.call('PEXPIREAT', resv, deadline + keep_s * 1000)
redis.call('ZADD', leases, deadline, job)
return {'reserved', 'open', amount, tostring(deadline), rows}
