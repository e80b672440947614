-- Gives a job back unprocessed, from the current lease holder only:
-- claimable at once, the attempt not counted.
-- KEYS: job, stream, leases, delayed. ARGV: job id, lease id, now, group, job ttl ms.
-- Answers 1, or 0 for a stale claim.
local k_job, k_stream, k_leases, k_delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, lease_id, now, group, job_ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]

local h = redis.call('HMGET', k_job, 'status', 'lease_id', 'seq', 'sid', 'attempts')
if h[1] ~= 'running' or h[2] ~= lease_id then
  return 0
end
local member = member_of(h[3] or '', id)
local attempts = (tonumber(h[5]) or 0) - 1
if attempts < 0 then attempts = 0 end
redis.call('ZREM', k_leases, member)
drop_entry(k_stream, group, h[4])
redis.call('HDEL', k_job, 'lease_id', 'lease_until', 'partial')
redis.call('HSET', k_job, 'status', 'queued', 'available_at', now, 'attempts', attempts,
  'updated_at', now, 'sid', '')
redis.call('ZADD', k_delayed, now, member)
redis.call('PEXPIRE', k_job, job_ttl)
return 1
