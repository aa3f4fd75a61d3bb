--! include budget_common.lua
-- Replace a reservation by the actual cost, once (see settle_resv in budget_common.lua).
-- KEYS: resv, leases, alert stream;  ARGV: job_id, actual, keep_s
local fired = {}
local r, changed = settle_resv(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], tonumber(ARGV[3]), fired)
if not r then return {'none'} end
return {r.state, changed, r.amount, r.charged, states(r.keys), fired}
