-- Import a batch of uploaded contacts, idempotent on campaign + E.164.
-- KEYS[1]   due zset of the campaign   KEYS[2] the list's own index (zset e164 -> line)
-- KEYS[3..] one contact hash per contact, in ARGV order
-- ARGV[1] now (epoch seconds)   ARGV[2] list id
-- ARGV[3..] per contact, 3 values: e164, line number, data JSON (neutralised cells)
-- Returns one integer per contact: 1 = new contact queued, 0 = merged into an existing one.
-- A number already known to the campaign (from this or another list, in any state) is never
-- re-queued: uploading a file twice must not dial anyone twice. Its missing columns are filled in. A new
-- contact goes in its list's index (a merged one stays its first list's).
local now = ARGV[1]
local list_id = ARGV[2]
local out = {}
for i = 3, #KEYS do
  local base = 3 + (i - 3) * 3
  local e164, line, data = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local key = KEYS[i]
  if redis.call('EXISTS', key) == 1 then
    local old = redis.call('HGET', key, 'data')
    if old and data ~= '{}' then
      local merged = cjson.decode(old)
      local changed = false
      for k, v in pairs(cjson.decode(data)) do
        if merged[k] == nil or merged[k] == '' then merged[k] = v; changed = true end
      end
      if changed then redis.call('HSET', key, 'data', cjson.encode(merged)) end
    end
    out[#out + 1] = 0
  else
    redis.call('HSET', key, 'phone', e164, 'state', 'pending', 'attempts', 0, 'list', list_id,
               'line', line, 'data', data, 'created', now, 'next_at', now)
    redis.call('ZADD', KEYS[1], now, e164)
    redis.call('ZADD', KEYS[2], line, e164)
    out[#out + 1] = 1
  end
end
return out
