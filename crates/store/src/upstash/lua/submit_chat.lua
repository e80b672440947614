-- One chat submission: rate limits, ownership, user message, job, enqueue.
-- KEYS: job, stream, conversation, messages, owner's conversations,
--       then two rate-window keys per check, then the registry.
-- ARGV: now, job id, session, payload, message JSON, is_new (1/0), title,
--       job ttl ms, conversation ttl ms, conversation id, min retry ms,
--       prune conversations updated before, check count, then 5 per check,
--       then the namespace.
-- Answers {'ok', remaining...}, {'limited', index, retry_after_ms},
-- {'not_found'} or {'job_exists'}; nothing is written unless 'ok'.
local k_job, k_stream, k_conv, k_messages, k_owned = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = tonumber(ARGV[1])
local job_id, session, payload, message = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local is_new, title = ARGV[6] == '1', ARGV[7]
local job_ttl, conv_ttl, conv_id = ARGV[8], ARGV[9], ARGV[10]
local min_retry, prune_before, checks = tonumber(ARGV[11]), ARGV[12], tonumber(ARGV[13])

if redis.call('EXISTS', k_job) == 1 then
  return {'job_exists'}
end
local refused, detail = rate_evaluate(checks, 6, 14, now, min_retry)
if refused then
  return {'limited', refused, detail}
end
local head = redis.call('HMGET', k_conv, 'owner', 'updated_at')
local owner = head[1]
if owner then
  if owner ~= session then return {'not_found'} end
elseif not is_new then
  return {'not_found'}
end

rate_count(checks, 6, 14)
local updated = now
if owner then
  local before = tonumber(head[2]) or now
  if before > now then updated = before else redis.call('HSET', k_conv, 'updated_at', now) end
else
  redis.call('HSET', k_conv, 'owner', session, 'title', title, 'created_at', now, 'updated_at', now)
end
redis.call('RPUSH', k_messages, message)
redis.call('ZADD', k_owned, updated, conv_id)
redis.call('ZREMRANGEBYSCORE', k_owned, '-inf', '(' .. prune_before)
redis.call('PEXPIRE', k_conv, conv_ttl)
redis.call('PEXPIRE', k_messages, conv_ttl)
redis.call('PEXPIRE', k_owned, conv_ttl)
enqueue_job(k_job, k_stream, job_id, 'chat', session, payload, now, job_ttl)
local answer = {'ok'}
for i = 1, #detail do answer[i + 1] = detail[i] end
return answer
