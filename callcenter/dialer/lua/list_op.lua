-- Reset, recycle or delete the contacts of one uploaded list, a batch of the campaign's contact hashes at a time.
-- KEYS[1] the campaign's due zset   KEYS[2..] contact hashes of the campaign (only those of the list change)
-- ARGV[1] op: reset | recycle | delete   ARGV[2] list id   ARGV[3] now (epoch seconds)
-- reset: every contact of the list dialed again from its first attempt (DNC ones stay as they are);
-- recycle: only those that ran out of attempts (exhausted); delete: the contacts are gone.
-- A contact a dial holds now (leased) is left alone and counted. Returns {changed, leased}.
local op, list_id, now = ARGV[1], ARGV[2], ARGV[3]
local changed, leased = 0, 0
for i = 2, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'list', 'state', 'phone')
  if f[1] == list_id then
    local state, phone = f[2], f[3]
    if state == 'leased' then
      leased = leased + 1
    elseif op == 'delete' then
      redis.call('DEL', KEYS[i])
      redis.call('ZREM', KEYS[1], phone)
      changed = changed + 1
    elseif (op == 'reset' and state ~= 'dnc') or (op == 'recycle' and state == 'exhausted') then
      redis.call('HSET', KEYS[i], 'state', 'pending', 'attempts', 0, 'next_at', now)
      redis.call('ZADD', KEYS[1], now, phone)
      changed = changed + 1
    end
  end
end
return {changed, leased}
