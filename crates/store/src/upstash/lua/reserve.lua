-- Claim, step 1: picks up to n claimable jobs and reserves them (their
-- member in the lease index scored now + lease), so that racing claimers
-- pick different ones. Step 2 (take.lua, per job) checks and leases each.
--
-- Candidates, oldest first by arrival (the seq in the member): expired
-- leases and due retries. Every job in those indexes was delivered from the
-- stream before, so it is older than any undelivered entry: new entries,
-- read with XREADGROUP, only fill what is left.
-- KEYS: stream, leases, delayed. ARGV: now, n, lease ms, consumer, group, scan cap.
-- Answers the reserved members.
local k_stream, k_leases, k_delayed = KEYS[1], KEYS[2], KEYS[3]
local now, n, lease_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local consumer, group, cap = ARGV[4], ARGV[5], tonumber(ARGV[6])
local reserve_until = now + lease_ms

local candidates = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', k_leases, '-inf', '(' .. now, 'LIMIT', 0, cap)) do
  candidates[#candidates + 1] = {m, false}
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', k_delayed, '-inf', now, 'LIMIT', 0, cap)) do
  candidates[#candidates + 1] = {m, true}
end
table.sort(candidates, function(a, b)
  local sa = split_member(a[1])
  local sb = split_member(b[1])
  if sa == sb or not sa or not sb then return a[1] < b[1] end
  return seq_before(sa, sb)
end)

local reserved = {}
for i = 1, math.min(n, #candidates) do
  local m = candidates[i][1]
  if candidates[i][2] then redis.call('ZREM', k_delayed, m) end
  redis.call('ZADD', k_leases, reserve_until, m)
  reserved[#reserved + 1] = m
end

local wanted = n - #reserved
if wanted > 0 then
  local read = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', wanted, 'STREAMS', k_stream, '>')
  if type(read) == 'table' and read.err then
    if not string.find(read.err, 'NOGROUP', 1, true) then
      return redis.error_reply(read.err)
    end
    -- First claim on this namespace: the group reads the stream from its start.
    redis.call('XGROUP', 'CREATE', k_stream, group, '0', 'MKSTREAM')
    read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', wanted, 'STREAMS', k_stream, '>')
  end
  if read then
    for _, entry in ipairs(read[1][2]) do
      local sid, fields, id = entry[1], entry[2], nil
      for f = 1, #fields, 2 do
        if fields[f] == 'job' then id = fields[f + 1] end
      end
      if id then
        local m = member_of(sid, id)
        redis.call('ZADD', k_leases, reserve_until, m)
        reserved[#reserved + 1] = m
      else
        -- Not a job entry: drop it rather than read it again forever.
        drop_entry(k_stream, group, sid)
      end
    end
  end
end
return reserved
