-- The per-number cap of a cap group outside a campaign's reservation (an agent's click-to-call): the
-- same rolling zset reserve.lua counts campaign dials in, so dials of both share one cap.
-- KEYS[1] per-number cap zset (cap group)
-- ARGV[1] now  ARGV[2] cap max (> 0)  ARGV[3] window seconds  ARGV[4] member (unique per dial)
-- ARGV[5] '1' to count this dial when it passes, '0' to check only
-- Returns {1} when under the cap, else {0, retry_at} (when the oldest counted dial leaves the window).
local now, cap, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= cap then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(oldest[2]) + window)}
end
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('EXPIRE', KEYS[1], math.ceil(window) + 60)
end
return {1}
