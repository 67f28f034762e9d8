-- A conversation ended: the call leaves routing, the agent goes to wrap-up (or straight to free).
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] call id [5] agent id [6] talk seconds
local c, a, talk = ARGV[4], ARGV[5], num(ARGV[6], 0)
local cf = redis.call('HMGET', K.call(c), 'offer_queue', 'queue')
local q = cf[1] or cf[2]
local qc = q and qconf(q)
local wrap = qc and qc.wrapup or 0
if qc then
  local aht = qc.aht > 0 and (0.8 * qc.aht + 0.2 * (talk + wrap)) or (talk + wrap)
  redis.call('HSET', K.queue(q), 'aht', aht)
  stat(q, 'talk_sum', talk)
end
forget_call(c)
local af = redis.call('HMGET', K.agent(a), 'state', 'call')
if af[1] ~= 'on_call' or af[2] ~= c then return 0 end
redis.call('HINCRBY', K.agent(a), 'calls', 1)
redis.call('HINCRBYFLOAT', K.agent(a), 'talk', talk)
redis.call('HDEL', K.agent(a), 'call', 'offer')
if wrap > 0 then
  set_state(a, 'wrap_up')
  redis.call('ZADD', K.wrapups(), NOW + wrap, a)
else
  agent_free(a)
end
return 1
