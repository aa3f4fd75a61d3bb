-- Drops index entries whose result expired, unless a result reappeared since it was read.
-- KEYS: failed zset, then one result key per id. ARGV: the ids.
local n = 0
for i, id in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then n = n + redis.call('ZREM', KEYS[1], id) end
end
return n
