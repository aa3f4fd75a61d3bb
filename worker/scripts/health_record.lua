-- Apply one upstream attempt's outcome to the circuits of the models it involved, atomically.
-- A success closes the circuit (the hash is deleted: absent = closed and healthy). A failure
-- counts toward the threshold while closed; at the threshold the circuit opens for the base
-- cooldown. A failure once the cooldown has passed (the half-open probe failed) re-opens it with
-- the cooldown doubled, up to the cap. Failures that land while the circuit is open and cooling
-- down come from calls started before it opened: they are counted but do not move the clock.
-- A Retry-After hint longer than the cooldown (429/503) stretches the opening, up to the cap.
-- KEYS[1] = the circuits index (zset: hash key -> expiry ms), KEYS[2..] = health hashes.
-- ARGV[1] now ms, ARGV[2] threshold, ARGV[3] base cooldown ms, ARGV[4] max cooldown ms, ARGV[5] key ttl ms, ARGV[6] retry-after ms (0 = none),
-- ARGV[7] error type, ARGV[6 + i] 's' or 'f' for KEYS[i] (i >= 2).
-- Returns, per health hash: 'closed' | 'healthy' | 'counted' | 'opened' | 'reopened' | 'cooling'.
local now = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local hint = tonumber(ARGV[6])
local err = ARGV[7]

local function open(key, fails, trips)
  local cooldown = base
  for _ = 2, trips do
    cooldown = math.min(cooldown * 2, cap)
  end
  cooldown = math.max(cooldown, math.min(hint, cap))
  redis.call('HSET', key, 'state', 'open', 'fails', fails, 'trips', trips, 'until', now + cooldown,
             'cooldown', cooldown, 'opened', now, 'probe', 0, 'err', err)
end

local index = KEYS[1]
local out = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  local h = redis.call('HMGET', key, 'state', 'until', 'fails', 'trips')
  local status
  if ARGV[6 + i] == 's' then
    if redis.call('DEL', key) == 1 and h[1] == 'open' then status = 'closed' else status = 'healthy' end
    redis.call('ZREM', index, key)
  else
    local fails = (tonumber(h[3]) or 0) + 1
    local trips = tonumber(h[4]) or 0
    if h[1] == 'open' then
      if now < (tonumber(h[2]) or 0) then
        redis.call('HSET', key, 'fails', fails, 'err', err)
        status = 'cooling'
      else
        open(key, fails, math.min(trips + 1, 32))
        status = 'reopened'
      end
    elseif fails >= threshold then
      open(key, fails, 1)
      status = 'opened'
    else
      redis.call('HSET', key, 'state', 'closed', 'fails', fails, 'err', err)
      status = 'counted'
    end
    redis.call('PEXPIRE', key, ttl)
    redis.call('ZADD', index, now + ttl, key)
  end
  out[#out + 1] = status
end
return out
