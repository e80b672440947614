-- Queue counts at the caller's `now`. Read only.
-- KEYS: stream, leases, delayed, dead-letter index. ARGV: now, group.
-- Answers {queued, delayed, running, dead letters}.
local k_stream, k_leases, k_delayed, k_dead_index = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, group = ARGV[1], ARGV[2]
-- Every entry in the stream is undelivered or pending (entries are
-- acknowledged and deleted together), so undelivered = length - pending.
local undelivered = redis.call('XLEN', k_stream)
local pending = redis.pcall('XPENDING', k_stream, group)
if type(pending) == 'table' and not pending.err then
  undelivered = undelivered - (tonumber(pending[1]) or 0)
end
if undelivered < 0 then undelivered = 0 end
local expired = redis.call('ZCOUNT', k_leases, '-inf', '(' .. now)
local running = redis.call('ZCOUNT', k_leases, now, '+inf')
local due = redis.call('ZCOUNT', k_delayed, '-inf', now)
local later = redis.call('ZCOUNT', k_delayed, '(' .. now, '+inf')
local dead = redis.call('HLEN', k_dead_index)
return {undelivered + expired + due, later, running, dead}
