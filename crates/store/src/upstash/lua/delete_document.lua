-- Removes a catalog entry and queues the job that removes its chunks, in
-- one step: an entry is never gone without its chunks being queued for
-- removal, and no job is queued for an entry that was not there.
-- KEYS: records, owners, job, stream, registry.
-- ARGV: document id, job id, kind, job owner ('' for none), payload, now, job ttl ms,
--       namespace.
-- Answers 'ok', 'missing' or 'job_exists'; nothing is written unless 'ok'.
-- The owner's set keeps a stale member; list_documents drops it.
local k_docs, k_owners, k_job, k_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local doc_id = ARGV[1]
if redis.call('HEXISTS', k_docs, doc_id) == 0 then
  return 'missing'
end
if redis.call('EXISTS', k_job) == 1 then
  return 'job_exists'
end
redis.call('HDEL', k_docs, doc_id)
redis.call('HDEL', k_owners, doc_id)
enqueue_job(k_job, k_stream, ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7])
return 'ok'
