-- Progress of a running attempt, from the current lease holder only: the
-- answer text streamed so far, and the lease moved to `lease_until` in both
-- places claims judge expiry by (the job hash and the lease index).
-- KEYS: job, leases. ARGV: job id, lease id, partial text, lease until, now, job ttl ms.
-- Answers 1, or 0 for a stale claim (nothing changed).
local k_job, k_leases = KEYS[1], KEYS[2]
local id, lease_id, partial, lease_until, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local job_ttl = ARGV[6]

local h = redis.call('HMGET', k_job, 'status', 'lease_id', 'seq')
if h[1] ~= 'running' or h[2] ~= lease_id then
  return 0
end
redis.call('HSET', k_job, 'partial', partial, 'lease_until', lease_until, 'updated_at', now)
redis.call('ZADD', k_leases, lease_until, member_of(h[3] or '', id))
redis.call('PEXPIRE', k_job, job_ttl)
return 1
