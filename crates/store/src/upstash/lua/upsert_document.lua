-- Inserts or replaces a catalog entry.
-- KEYS: records, owners, the owner's set. ARGV: id, record JSON, owner key.
-- A previous owner's set keeps a stale member; list_documents drops it.
local k_docs, k_owners, k_owned = KEYS[1], KEYS[2], KEYS[3]
put_document(k_docs, k_owners, k_owned, ARGV[1], ARGV[2], ARGV[3])
return 1
