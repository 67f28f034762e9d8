-- Reset, recycle or delete the contacts of one uploaded list, a batch of the campaign's contact hashes at a time.
-- KEYS[1] the campaign's due zset   KEYS[2] the list's index (zset e164 -> line)
-- KEYS[3..] contact hashes of the campaign (only those of the list change)
-- ARGV[1] op: reset | recycle | delete   ARGV[2] list id   ARGV[3] now (epoch seconds)
-- reset: every contact of the list dialed again from its first attempt (DNC ones stay as they are);
-- recycle: only those that ran out of attempts (exhausted); delete: the contacts are gone, and the list's
-- index keeps only the contacts left (list_forget.lua then keeps them in the results export).
-- A contact a dial holds now (leased) is left alone and counted (delete marks it list_deleted: that dial is
-- its last). Returns {changed, leased}.
local op, list_id, now = ARGV[1], ARGV[2], ARGV[3]
local changed, leased = 0, 0
for i = 3, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'list', 'state', 'phone', 'line')
  if f[1] == list_id then
    local state, phone = f[2], f[3]
    if state == 'leased' then
      leased = leased + 1
      if op == 'delete' then     -- never dialed again (finish.lua, reserve.lua), exported under the list
        redis.call('HSET', KEYS[i], 'list_deleted', now)
        redis.call('ZADD', KEYS[2], tonumber(f[4]) or 0, phone)
      end
    elseif op == 'delete' then
      redis.call('DEL', KEYS[i])
      redis.call('ZREM', KEYS[1], phone)
      redis.call('ZREM', KEYS[2], phone)
      changed = changed + 1
    elseif (op == 'reset' and state ~= 'dnc') or (op == 'recycle' and state == 'exhausted') then
      redis.call('HSET', KEYS[i], 'state', 'pending', 'attempts', 0, 'next_at', now)
      redis.call('ZADD', KEYS[1], now, phone)
      changed = changed + 1
    end
  end
end
return {changed, leased}
