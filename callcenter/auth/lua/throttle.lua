-- Count one failed login against each key (per user, per address) in a fixed window.
-- KEYS[1..n]: failure counters (auth:fail:u:{name}, auth:fail:a:{address})
-- ARGV[1]: window in seconds
-- Returns the counts, in KEYS order.
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then
    redis.call('EXPIRE', key, ARGV[1])
  end
  out[i] = n
end
return out
