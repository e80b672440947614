-- The most recent dead letters. Read only.
-- KEYS: dead-letter stream. ARGV: limit.
-- Answers {job, kind, attempts, error, failed_at} per letter, newest first.
local k_dead = KEYS[1]
local answer = {}
for _, entry in ipairs(redis.call('XREVRANGE', k_dead, '+', '-', 'COUNT', ARGV[1])) do
  local record = {}
  local fields = entry[2]
  for f = 1, #fields, 2 do record[fields[f]] = fields[f + 1] end
  answer[#answer + 1] = {record['job'] or false, record['kind'] or false,
    record['attempts'] or false, record['error'] or false, record['failed_at'] or false}
end
return answer
