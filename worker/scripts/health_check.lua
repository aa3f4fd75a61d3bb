-- Read the circuit of every model in a chain and claim half-open probe slots, in one atomic call.
-- State lives in one hash per model (absent = closed and healthy). "Half-open" is not stored: it
-- is an open circuit whose cooldown has passed. Exactly one caller at a time may probe it: the
-- first to find the probe lease expired writes a new lease; everyone else is told to skip.
-- Times are epoch ms from the caller's clock, so every worker must agree on time roughly.
-- KEYS = health hashes. ARGV[1] = now ms, ARGV[2] = probe lease ms.
-- Returns, per key: code (0 usable, 1 open, 2 half-open and someone else probes,
-- 3 usable as the probe), ms until that changes, consecutive failures, last error type.
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local out = {}
for _, key in ipairs(KEYS) do
  local h = redis.call('HMGET', key, 'state', 'until', 'probe', 'fails', 'err')
  local code, wait = 0, 0
  if h[1] == 'open' then
    local open_until = tonumber(h[2]) or 0
    local probe_until = tonumber(h[3]) or 0
    if now < open_until then
      code, wait = 1, open_until - now
    elseif now < probe_until then
      code, wait = 2, probe_until - now
    else
      redis.call('HSET', key, 'probe', now + lease)
      code, wait = 3, lease
    end
  end
  out[#out + 1] = code
  out[#out + 1] = wait
  out[#out + 1] = tonumber(h[4]) or 0
  out[#out + 1] = h[5] or ''
end
return out
