-- Shared by rules_push.lua and rules_activate.lua: the active version, the audit entry and the
-- activation edge (SET, audit, PUBLISH in one script, so no worker can see one without the others).

-- The active version number, 0 when none is active (workers use their rules file).
local function active_number(active_key)
  local raw = redis.call('GET', active_key)
  if not raw then return 0 end
  return tonumber(raw) or 0
end

-- ``previous`` 0 is written as '' (no version was active).
local function audit(stream, maxlen, event, version, hash, by, at, previous, message)
  local prev = ''
  if previous ~= 0 then prev = previous end
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'event', event, 'version', version,
             'hash', hash, 'by', by, 'at', at, 'previous', prev, 'message', message)
end

local function activate(active_key, stream, channel, maxlen, version, hash, by, at, previous, message)
  redis.call('SET', active_key, version)
  audit(stream, maxlen, 'activate', version, hash, by, at, previous, message)
  redis.call('PUBLISH', channel, version)
end
