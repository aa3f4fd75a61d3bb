-- Count decision-stream entries in an id range by time bucket, queue and status, inside Redis:
-- entries may hold prompts (ROUTEQ_STORE_PROMPTS), so they are never sent over the wire, and
-- one call reads at most ARGV[4] entries (the caller continues from the returned last id).
-- KEYS[1] = decisions stream.
-- ARGV[1] = 'asc' | 'desc', ARGV[2] = low id ('-', 'ms', or '(ms-seq' exclusive), ARGV[3] = high
-- id ('+' or an id), ARGV[4] = max entries, ARGV[5] = bucket width ms (0: a single bucket 0),
-- ARGV[6] = arrivals since (epoch ms; '' = do not count arrivals).
-- An entry's job arrived at (entry ms - total_ms - queue_ms); missing fields count as 0.
-- Returns {scanned, first id, last id, {bucket, queue, status, count, ...}, {queue, arrivals, ...}}.
local width = tonumber(ARGV[5])
local since = tonumber(ARGV[6])
local entries
if ARGV[1] == 'desc' then
  entries = redis.call('XREVRANGE', KEYS[1], ARGV[3], ARGV[2], 'COUNT', ARGV[4])
else
  entries = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[3], 'COUNT', ARGV[4])
end
local counts, order = {}, {}
local arrivals, aorder = {}, {}
for _, entry in ipairs(entries) do
  local ms = tonumber(string.match(entry[1], '^(%d+)'))
  local f = entry[2]
  local queue, status, total, waited = '', '', 0, 0
  for i = 1, #f, 2 do
    local k = f[i]
    if k == 'queue' then queue = f[i + 1]
    elseif k == 'status' then status = f[i + 1]
    elseif k == 'total_ms' then total = tonumber(f[i + 1]) or 0
    elseif k == 'queue_ms' then waited = tonumber(f[i + 1]) or 0
    end
  end
  local bucket = 0
  if width > 0 then bucket = math.floor(ms / width) * width end
  local key = bucket .. '|' .. queue .. '|' .. status
  if counts[key] == nil then
    counts[key] = {bucket, queue, status, 0}
    order[#order + 1] = key
  end
  counts[key][4] = counts[key][4] + 1
  if since ~= nil and ms - total - waited >= since then
    if arrivals[queue] == nil then
      arrivals[queue] = 0
      aorder[#aorder + 1] = queue
    end
    arrivals[queue] = arrivals[queue] + 1
  end
end
local flat = {}
for _, key in ipairs(order) do
  local c = counts[key]
  flat[#flat + 1] = tostring(c[1])
  flat[#flat + 1] = c[2]
  flat[#flat + 1] = c[3]
  flat[#flat + 1] = c[4]
end
local aflat = {}
for _, queue in ipairs(aorder) do
  aflat[#aflat + 1] = queue
  aflat[#aflat + 1] = arrivals[queue]
end
local first, last = '', ''
if #entries > 0 then
  first = entries[1][1]
  last = entries[#entries][1]
end
return {#entries, first, last, flat, aflat}
