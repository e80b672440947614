-- One upload submission: the duplicate check, rate limits, the pending
-- catalog record, the ingest job and its enqueue.
-- KEYS: records, owners, the owner's set, job, stream,
--       then two rate-window keys per check, then the registry.
-- ARGV: document id, record JSON, owner key, failed marker, job id, kind,
--       job owner ('' for none), payload, now, job ttl ms, min retry ms,
--       check count, then 5 per check, then the namespace.
-- Answers {'ok', remaining...}, {'exists', record JSON},
-- {'limited', index, retry_after_ms} or {'job_exists'}; nothing is written
-- unless 'ok'.
local k_docs, k_owners, k_owned, k_job, k_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local doc_id, record, owner, failed_marker = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local job_id, kind, job_owner, payload = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local now, job_ttl = tonumber(ARGV[9]), ARGV[10]
local min_retry, checks = tonumber(ARGV[11]), tonumber(ARGV[12])

-- Upstash's Lua has no cjson: a failed record is recognised by the exact
-- text the store writes for its status (the marker, from Rust). Anything
-- else, unreadable records included, counts as existing; Rust reads it back.
local existing = redis.call('HGET', k_docs, doc_id)
if existing and not string.find(existing, failed_marker, 1, true) then
  return {'exists', existing}
end
if redis.call('EXISTS', k_job) == 1 then
  return {'job_exists'}
end
local refused, detail = rate_evaluate(checks, 6, 13, now, min_retry)
if refused then
  return {'limited', refused, detail}
end
rate_count(checks, 6, 13)
put_document(k_docs, k_owners, k_owned, doc_id, record, owner)
enqueue_job(k_job, k_stream, job_id, kind, job_owner, payload, now, job_ttl)
local answer = {'ok'}
for i = 1, #detail do answer[i + 1] = detail[i] end
return answer
