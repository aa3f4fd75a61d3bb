-- Replace a reservation by the actual cost, once.
-- KEYS: resv, leases, alert stream;  ARGV: job_id, actual, keep_s
-- open      -> give back the reservation, charge `actual` (even above it: real money), close.
-- settled   -> return the recorded outcome, change nothing.
-- reclaimed -> the lease expired and the full reservation was charged; the first late report
--              charges only what it exceeds that by (never refunds), later ones change nothing.
local resv, leases, stream = KEYS[1], KEYS[2], KEYS[3]
local job, actual, keep_s = ARGV[1], ARGV[2], tonumber(ARGV[3])

local r = load_resv(resv)
if not r then return {'none'} end

local fired, changed = {}, 0
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
return {r.state, changed, r.amount, r.charged, states(r.keys), fired}
