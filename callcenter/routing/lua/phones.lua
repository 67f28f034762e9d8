-- The SIP edge's registrations, as one poll read them (routing/phones.py): the agents with a phone there.
-- An agent with none is never offered a call: an available one is paused (reason no_phone) here, any other
-- when it would become available (make_available); one paused no_phone whose phone registered is made
-- available at once. Each change is an agent.state event (pause_agent, make_available).
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] seconds the set stays valid without
--   another poll [5..] ids of the agents with a phone registered
-- Returns {agents made available, agents paused}.
local ttl = num(ARGV[4], 10)
local now_in = {}
for i = 5, #ARGV do now_in[ARGV[i]] = true end
local known = redis.call('EXISTS', K.phones()) == 1
local before = {}
if known then
  for _, a in ipairs(redis.call('SMEMBERS', K.phones())) do before[a] = true end
else
  -- not known until now: every configured agent may have been offerable without a phone
  for _, a in ipairs(redis.call('SMEMBERS', K.agents())) do before[a] = 'unknown' end
end
redis.call('DEL', K.phones())
redis.call('SADD', K.phones(), '')
for i = 5, #ARGV, 500 do
  redis.call('SADD', K.phones(), unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
redis.call('EXPIRE', K.phones(), math.max(1, math.ceil(ttl)))
local made, paused = 0, 0
for a, _ in pairs(now_in) do
  if before[a] ~= true then
    local ag = agent_get(a)
    if ag and ag.state == 'paused' and ag.pause_reason == 'no_phone' then
      close_pause(ag)
      redis.call('HSET', K.agent(a), 'misses', 0)
      make_available(ag)
      made = made + 1
    end
  end
end
for a, _ in pairs(before) do
  if a ~= '' and not now_in[a] then
    local ag = agent_get(a)
    if ag and ag.state == 'available' then
      pause_agent(ag, 'no_phone')
      paused = paused + 1
    end
  end
end
return {made, paused}
