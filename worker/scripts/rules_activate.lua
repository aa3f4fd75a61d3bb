-- Make a stored rules version the active one (a rollback activates an older number), atomically
-- with its audit entry and the pub/sub notice. Activating the active version again is allowed and
-- audited (it re-announces it, e.g. to a worker that missed the message).
-- KEYS[1] = active version, KEYS[2] = audit stream.
-- ARGV[1] = version key base, ARGV[2] = version number, ARGV[3] = by, ARGV[4] = now ms,
-- ARGV[5] = expected active number or '' (0 = none active), ARGV[6] = pub/sub channel,
-- ARGV[7] = audit stream MAXLEN (approximate), ARGV[8] = message.
-- Returns {'ok', previous active (0: none)}, {'unknown'} or {'conflict', active (0: none)}.
--! include rules_common.lua
local key = ARGV[1] .. ARGV[2]
local hash = redis.call('HGET', key, 'hash')
if not hash then
  return {'unknown'}
end
local previous = active_number(KEYS[1])
if ARGV[5] ~= '' and previous ~= tonumber(ARGV[5]) then
  return {'conflict', previous}
end
activate(KEYS[1], KEYS[2], ARGV[6], ARGV[7], tonumber(ARGV[2]), hash, ARGV[3], ARGV[4], previous, ARGV[8])
return {'ok', previous}
