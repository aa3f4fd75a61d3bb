-- Push an open reservation's lease deadline to now + lease_ms (Redis clock).
-- KEYS: resv, leases;  ARGV: job_id, lease_ms, keep_s
local resv, leases = KEYS[1], KEYS[2]
if redis.call('HGET', resv, 'state') ~= 'open' then return 0 end
local deadline = now_ms() + tonumber(ARGV[2])
redis.call('HSET', resv, 'deadline', deadline)
redis.call('PEXPIREAT', resv, deadline + tonumber(ARGV[3]) * 1000)
redis.call('ZADD', leases, deadline, ARGV[1])
return 1
