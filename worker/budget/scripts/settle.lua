-- Replace a reservation by the actual cost, once.
-- KEYS: resv, leases, alert stream;  ARGV: job_id, actual, keep_s
-- open      -> give back the reservation, charge `actual` (even above it: real money), close.
-- settled   -> return the recorded outcome, change nothing.
-- reclaimed -> the lease expired and the full reservation was charged; the first late report
--              charges only what it exceeds that by (never refunds), later ones change nothing.
local resv, leases, stream = KEYS[1], KEYS[2], KEYS[3]
local job, actual, keep_s = ARGV[1], ARGV[2], tonumber(ARGV[3])

local r = redis.call('HMGET', resv, 'state', 'amount', 'charged')
if not r[1] then return {'none'} end

local fired, changed = {}, 0
local keys
if r[1] == 'open' then
  keys = close(resv, job, leases, stream, actual, 'settled', keep_s, fired)
  changed = 1
else
  keys = resv_keys(resv)
  if r[1] == 'reclaimed' and redis.call('HSETNX', resv, 'late_actual', actual) == 1 then
    local extra = tonumber(actual) - tonumber(r[3])
    if extra > 0 then
      charge(keys, string.format('%d', extra), job, stream, fired)
      redis.call('HSET', resv, 'charged', actual)
      changed = 1
    end
  end
end
local now = redis.call('HMGET', resv, 'state', 'amount', 'charged')
return {now[1], changed, now[2], now[3], states(keys), fired}
