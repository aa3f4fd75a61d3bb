--! include budget_common.lua
-- Close reservations whose lease ran out, charging the full reserved amount (conservative: the
-- worker may have spent it and can no longer say).
-- KEYS: leases, alert stream;  ARGV: resv key prefix, now_ms|'' (Redis clock), limit, keep_s
local leases, stream = KEYS[1], KEYS[2]
local now = now_ms(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', leases, '-inf', '(' .. string.format('%d', now),
  'LIMIT', 0, tonumber(ARGV[3]))
local done, fired = {}, {}
for _, job in ipairs(ids) do
  local resv = ARGV[1] .. job
  local r = load_resv(resv)
  if r and r.state == 'open' then
    close(resv, r, job, leases, stream, r.amount, 'reclaimed', tonumber(ARGV[4]), fired)
    done[#done + 1] = job
  else
    redis.call('ZREM', leases, job)
  end
end
return {done, fired}
