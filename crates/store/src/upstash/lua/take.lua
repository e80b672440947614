-- Claim, step 2: leases one reserved job if, per the caller's `now`, it is
-- still claimable, and reconciles the indexes with the job record otherwise.
-- KEYS: job, stream, leases, delayed, dead-letter stream, dead-letter index, lease counter,
--       catalog records.
-- ARGV: member, now, lease until, worker, consumer, group, max attempts, job ttl ms,
--       a failed upload's reason (JSON).
-- Answers {'ok', lease id, job fields...}, {'dead'} (out of attempts:
-- failed and dead-lettered, and its upload's pending record failed) or
-- {'skip'} (not claimable, or gone).
local k_job, k_stream, k_leases, k_delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local k_dead, k_dead_index, k_lease_seq, k_docs = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local member, now, lease_until = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local worker, consumer, group = ARGV[4], ARGV[5], ARGV[6]
local max_attempts, job_ttl, upload_reason = tonumber(ARGV[7]), ARGV[8], ARGV[9]
local seq, id = split_member(member)

local function forget()
  redis.call('ZREM', k_leases, member)
  redis.call('ZREM', k_delayed, member)
end

if redis.call('EXISTS', k_job) == 0 then
  -- Expired or deleted: its first entry may still be in the stream.
  forget()
  drop_entry(k_stream, group, seq)
  return {'skip'}
end
local h = redis.call('HMGET', k_job, 'status', 'available_at', 'lease_until', 'attempts', 'sid', 'kind')
local status, sid = h[1], h[5] or ''
local attempts = tonumber(h[4]) or 0
if status == 'queued' then
  local available_at = tonumber(h[2]) or 0
  if available_at > now then
    -- Not due by this caller's clock: back among the delayed.
    redis.call('ZREM', k_leases, member)
    redis.call('ZADD', k_delayed, available_at, member)
    return {'skip'}
  end
elseif status == 'running' then
  local held_until = tonumber(h[3]) or 0
  if held_until >= now then
    -- Someone holds a valid lease: undo this reservation's score.
    redis.call('ZADD', k_leases, held_until, member)
    return {'skip'}
  end
  if attempts >= max_attempts then
    -- Read by users too (claims.rs of sqlite writes the same words).
    local err = 'The job stopped responding on every attempt (' .. attempts
      .. ') and was given up; try again later.'
    redis.call('HSET', k_job, 'status', 'failed', 'error', err, 'updated_at', now, 'sid', '')
    redis.call('HDEL', k_job, 'lease_id', 'lease_until', 'partial')
    forget()
    drop_entry(k_stream, group, sid)
    dead_letter(k_dead, k_dead_index, id, h[6] or '', attempts, err, now)
    fail_pending_upload(k_job, k_docs, upload_reason, ARGV[2])
    redis.call('PEXPIRE', k_job, job_ttl)
    return {'dead'}
  end
else
  -- Finished (or unknown): nothing to hand out.
  forget()
  drop_entry(k_stream, group, sid)
  return {'skip'}
end

local lease_id = 'L' .. redis.call('INCR', k_lease_seq)
redis.call('HINCRBY', k_job, 'attempts', 1)
redis.call('HSET', k_job, 'status', 'running', 'lease_id', lease_id, 'lease_until', lease_until,
  'worker', worker, 'updated_at', now)
-- A new attempt starts from nothing, whatever an abandoned one streamed.
redis.call('HDEL', k_job, 'partial')
redis.call('ZREM', k_delayed, member)
redis.call('ZADD', k_leases, lease_until, member)
if sid ~= '' then
  -- Its stream entry moves to this consumer's pending list.
  redis.call('XCLAIM', k_stream, group, consumer, 0, sid, 'JUSTID')
end
redis.call('PEXPIRE', k_job, job_ttl)
local answer = {'ok', lease_id}
local fields = read_job(k_job)
for i = 1, #JOB_FIELDS do answer[i + 2] = fields[i] end
return answer
