-- Forgets a session's end once the session owns no document (clean-up
-- removed them all). KEYS: owners, the owner's set, session ends.
-- ARGV: owner key. Answers 1 (forgotten) or 0 (it still owns one).
-- Drops stale set members on the way, as list_documents does.
local k_owners, k_owned, k_ends = KEYS[1], KEYS[2], KEYS[3]
local owner = ARGV[1]
for _, id in ipairs(redis.call('SMEMBERS', k_owned)) do
  if redis.call('HGET', k_owners, id) == owner then
    return 0
  end
  redis.call('SREM', k_owned, id)
end
redis.call('ZREM', k_ends, owner)
return 1
