-- Hand a popped wake-up token back to a job's done list, which keeps the result's TTL, so any
-- number of waiters wake and the list never outlives the result it announces.
-- KEYS[1] = done list, KEYS[2] = result. ARGV[1] = token.
redis.call('LPUSH', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PEXPIRE', KEYS[1], 60000)
end
return ttl
