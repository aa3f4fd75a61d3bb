-- Record (or replace) one job's feedback and fold it into the rollups of the hour (and day) the
-- job finished.
-- KEYS[1] the job's feedback reference (written when it finished), KEYS[2] its feedback record.
-- ARGV[1] score ('' = none), [2] label ('' = none), [3] comment, [4] now ms, [5] label cap.
-- A second feedback first takes the first one out of the rollup, so nothing is counted twice.
-- Labels are bounded like the rollup dimensions: the first ARGV[5] distinct labels are kept in
-- {prefix}rollup:dim:label (expiring with the rollups), later ones count as 'l:other'; the record
-- remembers which field it counted ('rlabel'), so a replacement takes out exactly that.
-- Returns {'unknown'} for a job with no reference (never finished, or older than the feedback
-- TTL), else {'ok', replaced (0/1)}.
local ref = redis.call('GET', KEYS[1])
if not ref then return {'unknown'} end
local hour, prefix = string.match(ref, '^([^\t]*)\t([^\t]*)\t')
local live = redis.call('EXISTS', hour) == 1  -- an expired hour is not brought back
-- The day tier (see finish.lua) counted this job if its hour is not before the day's '_first'.
local base, stamp = string.match(hour, '^(.*rollup:)(%d%d%d%d%d%d%d%d%d%d)$')
local day = nil
if live and base then
  day = base .. 'd:' .. string.sub(stamp, 1, 8)
  local first = tonumber(redis.call('HGET', day, '_first'))
  if not first or tonumber(string.sub(stamp, 9, 10)) < first then day = nil end
end
local function bump(field, by)
  redis.call('HINCRBY', hour, field, by)
  if day then redis.call('HINCRBY', day, field, by) end
end
local function bumpf(field, by)
  redis.call('HINCRBYFLOAT', hour, field, by)
  if day then redis.call('HINCRBYFLOAT', day, field, by) end
end
local old = redis.call('HMGET', KEYS[2], 'score', 'label', 'rlabel')
local LABEL_CAP = tonumber(ARGV[5]) or 100
local rlabel = ARGV[2]
if live and base and rlabel ~= '' then
  local set = base .. 'dim:label'
  if redis.call('SISMEMBER', set, rlabel) == 0 then
    if redis.call('SCARD', set) < LABEL_CAP then redis.call('SADD', set, rlabel) else rlabel = 'other' end
  end
  local ttl = redis.call('PTTL', hour)
  if ttl > 0 and redis.call('PTTL', set) < ttl then redis.call('PEXPIRE', set, ttl) end
end
local function add(score, sign)
  local s = tonumber(score)
  bump(prefix .. 'qn', sign)
  bumpf(prefix .. 'qs', string.format('%.17g', sign * s))
  bumpf(prefix .. 'qq', string.format('%.17g', sign * s * s))
end
if live then
  if old[1] then add(old[1], -1) end
  local counted = old[3] or old[2]
  if counted then bump(prefix .. 'l:' .. counted, -1) end
  if ARGV[1] ~= '' then add(ARGV[1], 1) end
  if rlabel ~= '' then bump(prefix .. 'l:' .. rlabel, 1) end
end
redis.call('DEL', KEYS[2])
local record = {'at', ARGV[4], 'ref', ref}
if ARGV[1] ~= '' then record[#record + 1] = 'score'; record[#record + 1] = ARGV[1] end
if ARGV[2] ~= '' then
  record[#record + 1] = 'label'; record[#record + 1] = ARGV[2]
  if live then record[#record + 1] = 'rlabel'; record[#record + 1] = rlabel end
end
if ARGV[3] ~= '' then record[#record + 1] = 'comment'; record[#record + 1] = ARGV[3] end
redis.call('HSET', KEYS[2], unpack(record))
redis.call('PEXPIRE', KEYS[2], math.max(1, redis.call('PTTL', KEYS[1])))
if old[1] or old[2] then return {'ok', 1} end
return {'ok', 0}
