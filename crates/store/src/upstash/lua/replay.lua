-- Puts a dead-lettered job back in the queue with fresh attempts, due now
-- and ahead of newer jobs (it keeps its place in arrival order).
-- KEYS: job, leases, delayed, dead-letter stream, dead-letter index, registry.
-- ARGV: job id, now, job ttl ms, namespace. Answers 1, or 0 (no such dead letter, or
-- its job is gone: the dead letter is dropped).
local k_job, k_leases, k_delayed, k_dead, k_dead_index = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, now, job_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]

if not undead(k_dead, k_dead_index, id) then
  return 0
end
if redis.call('EXISTS', k_job) == 0 then
  return 0
end
local member = member_of(redis.call('HGET', k_job, 'seq') or '', id)
redis.call('HDEL', k_job, 'error', 'result', 'lease_id', 'lease_until', 'partial')
redis.call('HSET', k_job, 'status', 'queued', 'attempts', 0, 'available_at', now,
  'updated_at', now, 'sid', '')
redis.call('ZREM', k_leases, member)
redis.call('ZADD', k_delayed, now, member)
redis.call('SADD', KEYS[6], ARGV[4])
redis.call('PEXPIRE', k_job, job_ttl)
return 1
