-- Record (or replace) one job's feedback and fold it into the rollup of the hour the job finished.
-- KEYS[1] the job's feedback reference (written when it finished), KEYS[2] its feedback record.
-- ARGV[1] score ('' = none), [2] label ('' = none), [3] comment, [4] now ms.
-- A second feedback first takes the first one out of the rollup, so nothing is counted twice.
-- Returns {'unknown'} for a job with no reference (never finished, or older than the feedback
-- TTL), else {'ok', replaced (0/1)}.
local ref = redis.call('GET', KEYS[1])
if not ref then return {'unknown'} end
local hour, prefix = string.match(ref, '^([^\t]*)\t([^\t]*)\t')
local live = redis.call('EXISTS', hour) == 1  -- an expired hour is not brought back
local old = redis.call('HMGET', KEYS[2], 'score', 'label')
local function add(score, sign)
  local s = tonumber(score)
  redis.call('HINCRBY', hour, prefix .. 'qn', sign)
  redis.call('HINCRBYFLOAT', hour, prefix .. 'qs', string.format('%.17g', sign * s))
  redis.call('HINCRBYFLOAT', hour, prefix .. 'qq', string.format('%.17g', sign * s * s))
end
if live then
  if old[1] then add(old[1], -1) end
  if old[2] then redis.call('HINCRBY', hour, prefix .. 'l:' .. old[2], -1) end
  if ARGV[1] ~= '' then add(ARGV[1], 1) end
  if ARGV[2] ~= '' then redis.call('HINCRBY', hour, prefix .. 'l:' .. ARGV[2], 1) end
end
redis.call('DEL', KEYS[2])
local record = {'at', ARGV[4], 'ref', ref}
if ARGV[1] ~= '' then record[#record + 1] = 'score'; record[#record + 1] = ARGV[1] end
if ARGV[2] ~= '' then record[#record + 1] = 'label'; record[#record + 1] = ARGV[2] end
if ARGV[3] ~= '' then record[#record + 1] = 'comment'; record[#record + 1] = ARGV[3] end
redis.call('HSET', KEYS[2], unpack(record))
redis.call('PEXPIRE', KEYS[2], math.max(1, redis.call('PTTL', KEYS[1])))
if old[1] or old[2] then return {'ok', 1} end
return {'ok', 0}
