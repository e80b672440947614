-- Inserts or replaces a catalog entry.
-- KEYS: records, owners, the owner's set. ARGV: id, record JSON, owner key.
-- A previous owner's set keeps a stale member; list_documents drops it.
local k_docs, k_owners, k_owned = KEYS[1], KEYS[2], KEYS[3]
redis.call('HSET', k_docs, ARGV[1], ARGV[2])
redis.call('HSET', k_owners, ARGV[1], ARGV[3])
redis.call('SADD', k_owned, ARGV[1])
return 1
