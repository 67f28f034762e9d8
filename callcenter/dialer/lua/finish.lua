-- Record the end of a dial attempt (or an agent disposition) and reschedule or close the contact.
-- KEYS[1] contact hash  KEYS[2] campaign due zset  KEYS[3] dialer lease set  KEYS[4] campaign stats hash
-- KEYS[5] DNC set to add the number to (used only when ARGV[8] == '1')
-- ARGV[1] now  ARGV[2] outcome  ARGV[3] new state  ARGV[4] next attempt epoch or ''
-- ARGV[5] dialer id that must own the lease ('' = no lease check, e.g. an agent disposition)
-- ARGV[6] e164  ARGV[7] lease member  ARGV[8] '1' to add to DNC  ARGV[9] JSON object of extra fields
-- A contact whose list was deleted while it was being dialed (list_op.lua: list_deleted) is not rescheduled:
-- its state is 'deleted' instead.
-- Returns 1, or 0 when the lease is no longer ours (recovered after we were presumed dead).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[5] ~= '' and redis.call('HGET', KEYS[1], 'lease_owner') ~= ARGV[5] then
  redis.call('SREM', KEYS[3], ARGV[7])
  return 0
end
local state, next_at = ARGV[3], ARGV[4]
if next_at ~= '' and redis.call('HEXISTS', KEYS[1], 'list_deleted') == 1 then state, next_at = 'deleted', '' end
redis.call('HSET', KEYS[1], 'state', state, 'last_outcome', ARGV[2], 'last_at', ARGV[1], 'lease_owner', '')
redis.call('SREM', KEYS[3], ARGV[7])
if next_at ~= '' then
  redis.call('HSET', KEYS[1], 'next_at', next_at)
  redis.call('ZADD', KEYS[2], tonumber(next_at), ARGV[6])
else
  redis.call('ZREM', KEYS[2], ARGV[6])
end
if ARGV[8] == '1' then redis.call('SADD', KEYS[5], ARGV[6]) end
for k, v in pairs(cjson.decode(ARGV[9])) do redis.call('HSET', KEYS[1], k, tostring(v)) end
redis.call('HINCRBY', KEYS[4], 'outcome:' .. ARGV[2], 1)
return 1
