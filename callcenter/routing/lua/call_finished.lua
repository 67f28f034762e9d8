-- A conversation ended: the call leaves routing, the agent goes to wrap-up (or straight to free).
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] call id [5] agent id [6] talk seconds
local c, a, talk = ARGV[4], ARGV[5], num(ARGV[6], 0)
local ci = call_get(c, CALL_END)
local q = ci and (ci.offer_queue or ci.queue)
local qc = q and qconf(q)
local wrap = qc and qc.wrapup or 0
if qc then
  -- today's talk time and handled count give the queue's AHT (aht_of), for estimated waits
  stat_ms(q, 'talk_ms', talk)
  stat(q, 'handled')
end
if ci then forget_call(ci) end
local ag = agent_get(a)
if ag == nil or ag.state ~= 'on_call' or ag.call ~= c then return 0 end
ag.calls, ag.talk = ag.calls + 1, ag.talk + talk
if wrap > 0 then
  redis.call('HSET', K.agent(a), 'calls', ag.calls, 'talk', ag.talk, 'state', 'wrap_up', 'since', NOW_S)
  redis.call('HDEL', K.agent(a), 'call', 'offer')
  redis.call('ZADD', K.wrapups(), NOW + wrap, a)
  agent_changed(ag, 'wrap_up', nil, c)
else
  -- make_available writes calls/talk with its own HSET; only a pending pause/logout needs this one
  if ag.pending then redis.call('HSET', K.agent(a), 'calls', ag.calls, 'talk', ag.talk) end
  agent_free(ag)
end
return 1
