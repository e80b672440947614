-- Drops the namespace from the registry of namespaces with work when it has
-- none: nothing in the stream, nothing leased, no retry waiting. The next
-- submission adds it again in its own script, so no job goes unseen.
-- KEYS: registry, stream, leases, delayed. ARGV: namespace.
-- Answers 1 if it was dropped, else 0.
local k_registry, k_stream, k_leases, k_delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('XLEN', k_stream) > 0 or redis.call('ZCARD', k_leases) > 0
    or redis.call('ZCARD', k_delayed) > 0 then
  return 0
end
return redis.call('SREM', k_registry, ARGV[1])
