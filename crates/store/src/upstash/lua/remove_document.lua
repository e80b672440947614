-- Removes a catalog entry. KEYS: records, owners. ARGV: id. Answers 1 or 0.
-- The owner's set keeps a stale member; list_documents drops it.
local k_docs, k_owners = KEYS[1], KEYS[2]
redis.call('HDEL', k_owners, ARGV[1])
return redis.call('HDEL', k_docs, ARGV[1])
