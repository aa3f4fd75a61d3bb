-- Store a validated catalog as a new version, activate it and tell the workers, in one step.
-- Activation only moves forward: of two syncs racing, the later number wins whatever order their
-- scripts run in. Versions older than the newest ``keep`` are deleted (never the active one).
-- KEYS[1] = version counter, KEYS[2] = active version.
-- ARGV[1] = version key base (the key of version n is base .. n), ARGV[2] = pub/sub channel,
-- ARGV[3] = versions kept, ARGV[4..] = field, value pairs of the version hash.
-- Returns {version, activated (0/1)}.
local base, channel, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
local version = redis.call('INCR', KEYS[1])
while redis.call('EXISTS', base .. version) == 1 do
  version = redis.call('INCR', KEYS[1])  -- the counter was reset by hand: never overwrite a version
end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', base .. version, unpack(fields))
local active = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local activated = 0
if version > active then
  redis.call('SET', KEYS[2], version)
  redis.call('PUBLISH', channel, version)
  active = version
  activated = 1
end
local old = version - keep
while old >= 1 do
  if old ~= active and redis.call('DEL', base .. old) == 0 then break end
  old = old - 1
end
return {version, activated}
