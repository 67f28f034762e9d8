-- Compliance check and attempt reservation in one step, so two dialer processes can never both
-- dial a number, nor together exceed a per-number cap shared by several campaigns.
-- KEYS[1] campaign state hash   KEYS[2] contact hash      KEYS[3] campaign due zset
-- KEYS[4] global DNC set        KEYS[5] campaign DNC set  KEYS[6] per-number cap zset (cap group)
-- KEYS[7] this dialer's lease set                         KEYS[8] campaign stats hash
-- ARGV[1] now  ARGV[2] e164  ARGV[3] cap max (0 = none)  ARGV[4] cap window seconds
-- ARGV[5] dialer id  ARGV[6] max attempts  ARGV[7] unique attempt id  ARGV[8] lease member
-- Returns {1, attempt_number} when reserved, or {0, reason, retry_at_or_empty}.
local now = tonumber(ARGV[1])
local e164 = ARGV[2]
local function blocked(reason, retry_at)
  redis.call('HINCRBY', KEYS[8], 'blocked:' .. reason, 1)
  return {0, reason, retry_at or ''}
end
local cstate = redis.call('HGET', KEYS[1], 'state')
if cstate ~= 'running' then
  return {0, 'campaign_' .. (cstate or 'stopped'), ''}
end
local state = redis.call('HGET', KEYS[2], 'state')
if state == 'pending' and redis.call('HEXISTS', KEYS[2], 'list_deleted') == 1 then
  -- its list was deleted while it was dialed, then something queued it again (a dead dialer's lease recovered)
  redis.call('HSET', KEYS[2], 'state', 'deleted')
  state = 'deleted'
end
if state ~= 'pending' then
  redis.call('ZREM', KEYS[3], e164)
  return {0, 'not_pending', ''}
end
if redis.call('SISMEMBER', KEYS[4], e164) == 1 or redis.call('SISMEMBER', KEYS[5], e164) == 1 then
  redis.call('HSET', KEYS[2], 'state', 'dnc', 'last_outcome', 'dnc')
  redis.call('ZREM', KEYS[3], e164)
  return blocked('dnc')
end
local attempts = tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0')
if attempts >= tonumber(ARGV[6]) then
  redis.call('HSET', KEYS[2], 'state', 'exhausted')
  redis.call('ZREM', KEYS[3], e164)
  return blocked('max_attempts')
end
local cap = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - window)
  if redis.call('ZCARD', KEYS[6]) >= cap then
    local oldest = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
    local retry_at = tonumber(oldest[2]) + window + 1
    redis.call('ZADD', KEYS[3], retry_at, e164)
    redis.call('HSET', KEYS[2], 'next_at', retry_at)
    return blocked('number_cap', tostring(retry_at))
  end
end
redis.call('ZADD', KEYS[6], now, ARGV[7])
redis.call('EXPIRE', KEYS[6], math.ceil(window) + 60)
attempts = attempts + 1
redis.call('HSET', KEYS[2], 'state', 'leased', 'lease_owner', ARGV[5], 'leased_at', now, 'attempts', attempts)
redis.call('ZREM', KEYS[3], e164)
redis.call('SADD', KEYS[7], ARGV[8])
redis.call('HINCRBY', KEYS[8], 'dials', 1)
return {1, attempts}
