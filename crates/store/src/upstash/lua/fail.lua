-- A failed attempt, from the current lease holder only: back to the
-- delayed set until `retry_at`, or (retry_at '') failed and dead-lettered.
-- A dead-lettered upload's pending catalog record is failed with it.
-- KEYS: job, stream, leases, delayed, dead-letter stream, dead-letter index,
--       catalog records.
-- ARGV: job id, lease id, error, retry_at or '', now, group, job ttl ms,
--       record a dead letter (1/0; 0 for a job whose record cannot be read),
--       the failed upload's reason (JSON).
-- Answers 'retry', 'dead' (failed; dead-lettered if asked) or 'stale'.
local k_job, k_stream, k_leases, k_delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local k_dead, k_dead_index, k_docs = KEYS[5], KEYS[6], KEYS[7]
local id, lease_id, err, retry_at, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local group, job_ttl, record_dead = ARGV[6], ARGV[7], ARGV[8] == '1'
local upload_reason = ARGV[9]

local h = redis.call('HMGET', k_job, 'status', 'lease_id', 'seq', 'sid', 'kind', 'attempts')
if h[1] ~= 'running' or h[2] ~= lease_id then
  return 'stale'
end
local member = member_of(h[3] or '', id)
redis.call('ZREM', k_leases, member)
drop_entry(k_stream, group, h[4])
redis.call('HDEL', k_job, 'lease_id', 'lease_until', 'partial')
redis.call('PEXPIRE', k_job, job_ttl)
if retry_at ~= '' then
  redis.call('HSET', k_job, 'status', 'queued', 'available_at', retry_at, 'error', err,
    'updated_at', now, 'sid', '')
  redis.call('ZADD', k_delayed, retry_at, member)
  return 'retry'
end
redis.call('HSET', k_job, 'status', 'failed', 'error', err, 'updated_at', now, 'sid', '')
if record_dead then
  dead_letter(k_dead, k_dead_index, id, h[5] or '', tonumber(h[6]) or 0, err, now)
  fail_pending_upload(k_job, k_docs, upload_reason, ARGV[5])
end
return 'dead'
