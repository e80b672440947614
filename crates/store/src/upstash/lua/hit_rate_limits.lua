-- Checks every limit and counts a hit on each only if all allow.
-- KEYS: two rate-window keys per check. ARGV: now, min retry ms, check
-- count, then 5 per check. Answers {'ok', remaining...} or
-- {'limited', index, retry_after_ms}.
local now, min_retry, checks = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local refused, detail = rate_evaluate(checks, 1, 4, now, min_retry)
if refused then
  return {'limited', refused, detail}
end
rate_count(checks, 1, 4)
local answer = {'ok'}
for i = 1, #detail do answer[i + 1] = detail[i] end
return answer
