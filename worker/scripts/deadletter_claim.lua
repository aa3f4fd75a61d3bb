-- Removes the job from the dead letters and returns what is needed to re-run it (or undo).
-- KEYS: failed zset, failedjob, result, done, job envelope. ARGV: job id.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return {'not_failed'} end
local doc = redis.call('GET', KEYS[2])
if not doc then return {'no_job'} end
if redis.call('EXISTS', KEYS[5]) > 0 then return {'busy'} end
local result = redis.call('GET', KEYS[3]) or ''
local result_ttl = redis.call('PTTL', KEYS[3])
local doc_ttl = redis.call('PTTL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
return {'ok', doc, score, result, result_ttl, doc_ttl}
