-- Resolve the leases of a dialer process presumed dead: the call may or may not have happened, so
-- the outcome is 'unknown', the attempt stays counted (and in the per-number cap), and the contact
-- is retried later. Only leases still owned by that dialer are touched.
-- KEYS[1] the dead dialer's lease set  KEYS[2] dialers heartbeat zset
-- KEYS[3..] pairs: contact hash, campaign due zset (one pair per lease member, in ARGV order)
-- ARGV[1] dialer id  ARGV[2] retry epoch  ARGV[3..] pairs: e164, lease member
-- Returns the number of contacts released.
local n = 0
for i = 3, #KEYS, 2 do
  local j = 3 + (i - 3)
  local e164, member = ARGV[j], ARGV[j + 1]
  local ct = KEYS[i]
  if redis.call('HGET', ct, 'lease_owner') == ARGV[1] and redis.call('HGET', ct, 'state') == 'leased' then
    redis.call('HSET', ct, 'state', 'pending', 'last_outcome', 'unknown', 'lease_owner', '', 'next_at', ARGV[2])
    redis.call('ZADD', KEYS[i + 1], tonumber(ARGV[2]), e164)
    n = n + 1
  end
  redis.call('SREM', KEYS[1], member)
end
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return n
