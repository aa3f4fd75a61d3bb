--! include budget_common.lua
-- Zero `spent` and forget fired alerts on existing counters. `reserved` stays: in-flight jobs
-- still settle against it, and dropping it would drive the counter negative.
-- KEYS: counters;  returns how many existed
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'spent', '0')
    redis.call('HDEL', key, 'alerted')
    n = n + 1
  end
end
return n
