-- Store a new immutable rules version, optionally activating it, in one atomic step.
-- With an expected active version (ARGV[8], '' = no check, '0' = none active), a mismatch stores
-- nothing at all, not even a version number: concurrent pushes with the same --expect let
-- exactly one win.
-- KEYS[1] = version counter, KEYS[2] = active version, KEYS[3] = audit stream.
-- ARGV[1] = version key base (the key of version n is base .. n), ARGV[2] = canonical JSON doc,
-- ARGV[3] = content hash, ARGV[4] = message, ARGV[5] = by, ARGV[6] = now ms,
-- ARGV[7] = '1' to activate, ARGV[8] = expected active number or '', ARGV[9] = pub/sub channel,
-- ARGV[10] = audit stream MAXLEN (approximate).
-- Returns {'ok', version, previous active (0: none)} or {'conflict', active (0: none)}.
--! include rules_common.lua
local base, doc, hash, message, by, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local maxlen = ARGV[10]
local previous = active_number(KEYS[2])
if ARGV[8] ~= '' and previous ~= tonumber(ARGV[8]) then
  return {'conflict', previous}
end
local version = redis.call('INCR', KEYS[1])
while redis.call('EXISTS', base .. version) == 1 do
  version = redis.call('INCR', KEYS[1])  -- the counter was reset by hand: never overwrite a version
end
redis.call('HSET', base .. version, 'doc', doc, 'hash', hash, 'message', message, 'created_ms', now,
           'by', by)
audit(KEYS[3], maxlen, 'push', version, hash, by, now, previous, message)
if ARGV[7] == '1' then
  activate(KEYS[2], KEYS[3], ARGV[9], maxlen, version, hash, by, now, previous, message)
end
return {'ok', version, previous}
