-- A queued job outside a chat submission.
-- KEYS: job, stream, registry. ARGV: job id, kind, owner ('' for none), payload,
-- now, job ttl ms, namespace.
-- Answers {'ok', entry id} or {'job_exists'}.
local k_job, k_stream = KEYS[1], KEYS[2]
if redis.call('EXISTS', k_job) == 1 then
  return {'job_exists'}
end
local sid = enqueue_job(k_job, k_stream, ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6])
return {'ok', sid}
