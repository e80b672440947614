-- Deletes a conversation, its messages and the feedback on its answers if
-- `owner` owns it.
-- KEYS: conversation, messages, owner's conversations, feedback.
-- ARGV: owner, conversation id.
-- Answers 1, or 0 (missing or someone else's).
local k_conv, k_messages, k_owned, k_feedback = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HGET', k_conv, 'owner') ~= ARGV[1] then
  return 0
end
redis.call('DEL', k_conv, k_messages, k_feedback)
redis.call('ZREM', k_owned, ARGV[2])
return 1
