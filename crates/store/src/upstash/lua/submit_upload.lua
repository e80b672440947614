-- One upload submission: the duplicate check, the session's quota, rate
-- limits, the pending catalog record (and the session's end, for clean-up),
-- the ingest job and its enqueue.
-- KEYS: records, owners, the owner's set, job, stream, session ends,
--       then two rate-window keys per check, then the registry.
-- ARGV: document id, record JSON, owner key, failed marker, job id, kind,
--       job owner ('' for none), payload, now, job ttl ms, min retry ms,
--       check count, max documents, max bytes, size bytes, session end ms
--       (the last four '' for a shared document), then 5 per check, then
--       the namespace.
-- Answers {'ok', remaining...}, {'exists', record JSON},
-- {'limited', index, retry_after_ms}, {'quota_documents'},
-- {'quota_bytes', bytes held} or {'job_exists'}; nothing is written unless
-- 'ok'.
local k_docs, k_owners, k_owned, k_job, k_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local k_ends = KEYS[6]
local doc_id, record, owner, failed_marker = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local job_id, kind, job_owner, payload = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local now, job_ttl = tonumber(ARGV[9]), ARGV[10]
local min_retry, checks = tonumber(ARGV[11]), tonumber(ARGV[12])
local max_docs, max_bytes = tonumber(ARGV[13]), tonumber(ARGV[14])
local size, session_end = tonumber(ARGV[15]), ARGV[16]

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
-- What the owner holds, except the record this one replaces. A size is
-- read from the record's text: serde writes `,"size_bytes":` only as that
-- field (a quote inside a string is always escaped), after the id, name
-- and owner strings.
if max_docs then
  local held_docs, held_bytes = 0, 0
  for _, id in ipairs(redis.call('SMEMBERS', k_owned)) do
    if id ~= doc_id and redis.call('HGET', k_owners, id) == owner then
      local held = redis.call('HGET', k_docs, id)
      if held then
        held_docs = held_docs + 1
        held_bytes = held_bytes + (tonumber(string.match(held, ',"size_bytes":(%d+)')) or 0)
      end
    end
  end
  if held_docs >= max_docs then
    return {'quota_documents'}
  end
  if held_bytes + size > max_bytes then
    return {'quota_bytes', held_bytes}
  end
end
local refused, detail = rate_evaluate(checks, 7, 17, now, min_retry)
if refused then
  return {'limited', refused, detail}
end
rate_count(checks, 7, 17)
put_document(k_docs, k_owners, k_owned, doc_id, record, owner)
if session_end ~= '' then
  local recorded = tonumber(redis.call('ZSCORE', k_ends, owner))
  if not recorded or recorded < tonumber(session_end) then
    redis.call('ZADD', k_ends, session_end, owner)
  end
end
enqueue_job(k_job, k_stream, job_id, kind, job_owner, payload, now, job_ttl)
local answer = {'ok'}
for i = 1, #detail do answer[i + 1] = detail[i] end
return answer
