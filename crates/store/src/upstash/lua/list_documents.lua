-- The catalog entries of one or two owners (shared, and a viewer).
-- KEYS: records, owners, then one set per owner. ARGV: the owner key of each set.
-- Answers the record JSONs; drops stale set members (removed, or re-owned).
local k_docs, k_owners = KEYS[1], KEYS[2]
local answer = {}
for s = 3, #KEYS do
  local k_owned = KEYS[s]
  local owner_key = ARGV[s - 2]
  for _, id in ipairs(redis.call('SMEMBERS', k_owned)) do
    if redis.call('HGET', k_owners, id) == owner_key then
      local record = redis.call('HGET', k_docs, id)
      if record then answer[#answer + 1] = record else redis.call('SREM', k_owned, id) end
    else
      redis.call('SREM', k_owned, id)
    end
  end
end
return answer
