-- Undoes a claim whose enqueue was refused; a result written meanwhile wins (NX).
-- KEYS: failed zset, failedjob, result, done. ARGV: job id, score, doc, doc ttl ms,
-- result, result ttl ms (ttl <= 0: none).
local function put(key, value, ttl)
  if ttl > 0 then return redis.call('SET', key, value, 'PX', ttl, 'NX') end
  return redis.call('SET', key, value, 'NX')
end
put(KEYS[2], ARGV[3], tonumber(ARGV[4]))
if ARGV[5] ~= '' and put(KEYS[3], ARGV[5], tonumber(ARGV[6])) then
  redis.call('RPUSH', KEYS[4], '1')
  if tonumber(ARGV[6]) > 0 then redis.call('PEXPIRE', KEYS[4], ARGV[6]) end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
