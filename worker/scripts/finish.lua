-- Write a job's result once, wake its waiters and record the decision, atomically.
-- A job can run twice under arq's at-least-once delivery: the first result wins (SET NX) and
-- only that run notifies and appends to the decision stream.
-- KEYS[1] result, KEYS[2] done list, KEYS[3] decisions stream, KEYS[4] failed zset,
-- KEYS[5] batch done list (optional)
-- ARGV[1] result json, ARGV[2] ttl s, ARGV[3] job id, ARGV[4] stream maxlen, ARGV[5] status,
-- ARGV[6] now ms, ARGV[7..] decision fields (name, value, ...)
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return 0
end
redis.call('RPUSH', KEYS[2], '1')
redis.call('EXPIRE', KEYS[2], ARGV[2])
if KEYS[5] then
  redis.call('RPUSH', KEYS[5], ARGV[3])
  redis.call('EXPIRE', KEYS[5], ARGV[2])
end
if ARGV[5] == 'failed' then
  redis.call('ZADD', KEYS[4], ARGV[6], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(ARGV[6]) - tonumber(ARGV[2]) * 1000)
end
local fields = {}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', unpack(fields))
end
return 1
