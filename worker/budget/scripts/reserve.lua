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

local now = now_ms()
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
