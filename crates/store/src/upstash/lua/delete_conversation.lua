-- Deletes a conversation and its messages if `owner` owns it.
-- KEYS: conversation, messages, owner's conversations. ARGV: owner, conversation id.
-- Answers 1, or 0 (missing or someone else's).
local k_conv, k_messages, k_owned = KEYS[1], KEYS[2], KEYS[3]
if redis.call('HGET', k_conv, 'owner') ~= ARGV[1] then
  return 0
end
redis.call('DEL', k_conv, k_messages)
redis.call('ZREM', k_owned, ARGV[2])
return 1
