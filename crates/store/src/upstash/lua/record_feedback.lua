-- Records a session's feedback on one answer, replacing its earlier one.
-- KEYS: conversation, messages, the conversation's feedback, recent feedback.
-- ARGV: session, job id, stored feedback (JSON), now, conversation TTL (ms),
-- prune before (ms), recent member (`<conversation id> <job id>`).
-- Answers 'ok', or 'not_found' (not the session's conversation, or no
-- answer of that job in it).
local k_conv, k_messages, k_feedback, k_recent = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local session, job, stored = ARGV[1], ARGV[2], ARGV[3]
local now, ttl, prune_before, member = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
if redis.call('HGET', k_conv, 'owner') ~= session then
  return 'not_found'
end
local found = false
for _, raw in ipairs(redis.call('LRANGE', k_messages, 0, -1)) do
  local ok, message = pcall(cjson.decode, raw)
  if ok and message.role == 'assistant' and message.job_id == job then
    found = true
    break
  end
end
if not found then
  return 'not_found'
end
redis.call('HSET', k_feedback, job, stored)
redis.call('PEXPIRE', k_feedback, ttl)
redis.call('ZADD', k_recent, now, member)
redis.call('ZREMRANGEBYSCORE', k_recent, '-inf', '(' .. prune_before)
return 'ok'
