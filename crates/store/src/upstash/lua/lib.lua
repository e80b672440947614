-- Helpers shared by every FlowChat store script. Each script is this file
-- followed by its own body, after the `#!lua flags=allow-key-locking` line.
--
-- Key discipline (Upstash key locking): a script touches only keys passed in
-- KEYS, bound to `k_*` locals at the top of its body and handed to these
-- helpers as parameters. No key name is ever built here.
--
-- Numbers: Lua numbers are doubles, exact for integers below 2^53, which
-- holds every timestamp (ms) and counter stored here.

-- floor(a / b) for integers a >= 0, b > 0, corrected for rounding of a / b.
local function idiv(a, b)
  local q = math.floor(a / b)
  while q * b > a do q = q - 1 end
  while (q + 1) * b <= a do q = q + 1 end
  return q
end

-- The sliding-window decision of `rate::decide` (crates/store/src/rate.rs),
-- step for step. Returns allowed (boolean), remaining, retry_after_ms.
local function rate_decide(limit, window, now, cur_start, cur_end, current, previous, min_retry)
  local left = cur_end - now
  local count = current + idiv(previous * left, window)
  if count < limit then
    return true, limit - count - 1, 0
  end
  local wait
  if limit == 0 then
    wait = cur_end - now
  else
    local at
    if current < limit then
      if previous == 0 then
        at = cur_start
      else
        at = cur_end - idiv((limit - current) * window - 1, previous)
      end
    else
      at = cur_end + window - idiv(limit * window - 1, current)
    end
    wait = at - now
  end
  if wait < min_retry then wait = min_retry end
  return false, 0, wait
end

-- Evaluates rate checks without counting them. `keys` holds two keys per
-- check (current window, previous window) starting at KEYS[first_key];
-- `args` holds five values per check (limit, window_ms, current_start,
-- current_end, counter_ttl_ms) starting at ARGV[first_arg].
-- Returns nil, {remaining...} when all allow, or the refusing check's
-- 1-based index and its retry_after_ms.
local function rate_evaluate(n, first_key, first_arg, now, min_retry)
  local remaining = {}
  for i = 1, n do
    local k = first_key + (i - 1) * 2
    local a = first_arg + (i - 1) * 5
    local current = tonumber(redis.call('GET', KEYS[k])) or 0
    local previous = tonumber(redis.call('GET', KEYS[k + 1])) or 0
    local allowed, left, wait = rate_decide(tonumber(ARGV[a]), tonumber(ARGV[a + 1]), now,
      tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), current, previous, min_retry)
    if not allowed then
      return i, wait
    end
    remaining[i] = left
  end
  return nil, remaining
end

-- Counts one hit on every check evaluated by `rate_evaluate`.
local function rate_count(n, first_key, first_arg)
  for i = 1, n do
    local k_window = KEYS[first_key + (i - 1) * 2]
    redis.call('INCR', k_window)
    redis.call('PEXPIRE', k_window, ARGV[first_arg + (i - 1) * 5 + 4])
  end
end

-- A queue member: the job's first stream entry id (its place in arrival
-- order), a bar, and the job id.
local function member_of(seq, id)
  return seq .. '|' .. id
end

local function split_member(member)
  local bar = string.find(member, '|', 1, true)
  if not bar then return nil, nil end
  return string.sub(member, 1, bar - 1), string.sub(member, bar + 1)
end

-- Whether stream id a ("ms-n") comes before b.
local function seq_before(a, b)
  local am, an = string.match(a, '^(%d+)-(%d+)$')
  local bm, bn = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then return a < b end
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then return am < bm end
  return tonumber(an) < tonumber(bn)
end

-- Acknowledges and deletes a job's stream entry, if it has one.
local function drop_entry(k_stream, group, sid)
  if sid and sid ~= '' then
    redis.call('XACK', k_stream, group, sid)
    redis.call('XDEL', k_stream, sid)
  end
end

-- Records (or replaces) the dead letter of job `id`.
local function dead_letter(k_dead, k_dead_index, id, kind, attempts, err, now)
  local old = redis.call('HGET', k_dead_index, id)
  if old then redis.call('XDEL', k_dead, old) end
  local entry = redis.call('XADD', k_dead, '*', 'job', id, 'kind', kind,
    'attempts', attempts, 'error', err, 'failed_at', now)
  redis.call('HSET', k_dead_index, id, entry)
end

-- Fails the catalog record of the upload that the job `k_job` was
-- ingesting, if it is still pending, with `reason_json` (a JSON string) as
-- its error and `now` (digits) as its time: dead-lettering never leaves an
-- upload pending forever. Upstash's Lua has no cjson, so the JSON written
-- by Rust is edited as text: serde writes a payload's tag and then its
-- fields in order, and a record's fields in order without spaces, and
-- escapes every quote inside a string, so the texts searched for below can
-- only be those fields (tests in `upstash/dead_letters.rs` pin them).
local function fail_pending_upload(k_job, k_docs, reason_json, now)
  local payload = redis.call('HGET', k_job, 'payload')
  if not payload then return end
  local doc = string.match(payload, '^{"type":"ingest_upload","document_id":"([^"\\]+)"')
  if not doc then return end
  local record = redis.call('HGET', k_docs, doc)
  if not record then return end
  local function replace(text, old, new)
    local s, e = string.find(text, old, 1, true)
    if not s then return nil end
    return string.sub(text, 1, s - 1) .. new .. string.sub(text, e + 1)
  end
  record = replace(record, ',"status":"pending",', ',"status":"failed",')
  if not record then return end
  record = replace(record, ',"error":null,', ',"error":' .. reason_json .. ',') or record
  local s, e = string.find(record, ',"updated_at":%-?%d+')
  if s then
    record = string.sub(record, 1, s - 1) .. ',"updated_at":' .. now .. string.sub(record, e + 1)
  end
  redis.call('HSET', k_docs, doc, record)
end

-- Removes the dead letter of job `id`; true if there was one.
local function undead(k_dead, k_dead_index, id)
  local old = redis.call('HGET', k_dead_index, id)
  if not old then return false end
  redis.call('XDEL', k_dead, old)
  redis.call('HDEL', k_dead_index, id)
  return true
end

-- The fields a job is read back with, in the order Rust expects.
local JOB_FIELDS = {'id', 'kind', 'status', 'owner', 'payload', 'attempts', 'result',
  'error', 'created_at', 'updated_at', 'partial'}

local function read_job(k_job)
  return redis.call('HMGET', k_job, unpack(JOB_FIELDS))
end

-- Writes a new queued job, appends it to the stream and names the namespace
-- in the registry of namespaces with work, which drains serving every
-- namespace read. Every script that calls it takes the registry as its last
-- key and the namespace as its last argument. Returns the entry id.
local function enqueue_job(k_job, k_stream, id, kind, owner, payload, now, ttl_ms)
  redis.call('SADD', KEYS[#KEYS], ARGV[#ARGV])
  local sid = redis.call('XADD', k_stream, '*', 'job', id)
  local fields = {'id', id, 'kind', kind, 'status', 'queued', 'payload', payload,
    'attempts', 0, 'created_at', now, 'updated_at', now, 'available_at', now,
    'seq', sid, 'sid', sid}
  if owner ~= '' then
    fields[#fields + 1] = 'owner'
    fields[#fields + 1] = owner
  end
  redis.call('HSET', k_job, unpack(fields))
  redis.call('PEXPIRE', k_job, ttl_ms)
  return sid
end

-- Writes a catalog entry: the record, its owner, and its id in the owner's
-- set (what list_documents reads a viewer's documents from).
local function put_document(k_docs, k_owners, k_owned, id, record, owner)
  redis.call('HSET', k_docs, id, record)
  redis.call('HSET', k_owners, id, owner)
  redis.call('SADD', k_owned, id)
end
