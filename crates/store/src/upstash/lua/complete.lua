-- Stores a job's result once, from any claim of it. For a chat job, also
-- appends the assistant message to its conversation if that still exists;
-- the status check and the append are one atomic step, so however many
-- completions race, one stores and appends.
-- KEYS: job, stream, leases, delayed, dead-letter stream, dead-letter index,
--       and for chat: conversation, messages, owner's conversations.
-- ARGV: job id, now, result JSON, group, job ttl ms,
--       and for chat: message JSON, conversation ttl ms, conversation id, session.
-- Answers 'stored', 'done' (already succeeded) or 'missing'.
local k_job, k_stream, k_leases, k_delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local k_dead, k_dead_index = KEYS[5], KEYS[6]
local id, now, result, group, job_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]

if redis.call('EXISTS', k_job) == 0 then
  return 'missing'
end
local h = redis.call('HMGET', k_job, 'status', 'seq', 'sid')
if h[1] == 'succeeded' then
  return 'done'
end
local member = member_of(h[2] or '', id)
redis.call('HSET', k_job, 'status', 'succeeded', 'result', result, 'updated_at', now, 'sid', '')
redis.call('HDEL', k_job, 'error', 'lease_id', 'lease_until', 'partial')
redis.call('ZREM', k_leases, member)
redis.call('ZREM', k_delayed, member)
drop_entry(k_stream, group, h[3])
-- A job a claim gave up on can still finish; it is no longer dead.
undead(k_dead, k_dead_index, id)
redis.call('PEXPIRE', k_job, job_ttl)

if #KEYS >= 9 then
  local k_conv, k_messages, k_owned = KEYS[7], KEYS[8], KEYS[9]
  local message, conv_ttl, conv_id, session = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  local head = redis.call('HMGET', k_conv, 'owner', 'updated_at')
  local owner = head[1]
  if owner then
    redis.call('RPUSH', k_messages, message)
    local before = tonumber(head[2]) or now
    if now > before then
      redis.call('HSET', k_conv, 'updated_at', now)
      if owner == session then redis.call('ZADD', k_owned, now, conv_id) end
    end
    redis.call('PEXPIRE', k_conv, conv_ttl)
    redis.call('PEXPIRE', k_messages, conv_ttl)
    if owner == session then redis.call('PEXPIRE', k_owned, conv_ttl) end
  end
end
return 'stored'
