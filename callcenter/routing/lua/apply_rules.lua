-- Apply routing rules (queues, agents) without losing waiting callers or live agent state.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] rules JSON (RoutingRules.to_json)
-- Returns {'ok'} or {'conflict', message} (nothing changed).
local rules = cjson.decode(ARGV[4])
-- Routing state written by another key layout (an older version) is taken over only when idle:
-- two layouts cannot share live callers and offers. Layout 1 had no marker.
local had = redis.call('GET', K.layout())
if had ~= LAYOUT then
  if had or redis.call('EXISTS', K.queues()) == 1 then
    for _, q in ipairs(redis.call('SMEMBERS', K.queues())) do
      if redis.call('ZCARD', K.waiting(q)) > 0 then
        return {'conflict', 'Redis holds routing state of layout ' .. (had or '1') .. ' with callers waiting in ' ..
          q .. '; this version uses layout ' .. LAYOUT .. ': stop the old workers and let the queues drain first'}
      end
    end
    for _, a in ipairs(redis.call('SMEMBERS', K.agents())) do
      local st = redis.call('HGET', K.agent(a), 'state')
      if st == 'reserved' or st == 'on_call' then
        return {'conflict', 'Redis holds routing state of layout ' .. (had or '1') .. ' with agent ' .. a .. ' ' ..
          st .. '; this version uses layout ' .. LAYOUT .. ': stop the old workers and let calls end first'}
      end
    end
  end
  redis.call('SET', K.layout(), LAYOUT)
end
for _, q in ipairs(redis.call('SMEMBERS', K.queues())) do
  if rules.queues[q] == nil then
    local n = redis.call('ZCARD', K.waiting(q))
    if n > 0 then return {'conflict', 'queue ' .. q .. ' has ' .. n .. ' waiting callers; drain it first'} end
  end
end
for _, a in ipairs(redis.call('SMEMBERS', K.agents())) do
  if rules.agents[a] == nil then
    local st = redis.call('HGET', K.agent(a), 'state')
    if st == 'reserved' or st == 'on_call' then
      return {'conflict', 'agent ' .. a .. ' is ' .. st .. '; remove it when the call ends'}
    end
  end
end
-- Agents leave their old free sets before queue configs change, then re-enter with new scores.
local available = {}
for _, a in ipairs(redis.call('SMEMBERS', K.agents())) do
  local ag = agent_get(a)
  if ag and ag.state == 'available' then
    leave_free_sets(ag)
    available[#available + 1] = a
  end
end
for _, q in ipairs(redis.call('SMEMBERS', K.queues())) do
  if rules.queues[q] == nil then
    for _, sig in ipairs(redis.call('SMEMBERS', K.sigset(q))) do redis.call('DEL', K.waiting_sig(q, sig)) end
    redis.call('DEL', K.queue(q), K.waiting(q), K.free(q), K.members(q), K.sigset(q), K.staffed(q))
    redis.call('SREM', K.queues(), q)
  end
end
local function enc(t)
  if type(t) == 'table' and next(t) == nil then return '{}' end
  return cjson.encode(t)
end
for q, r in pairs(rules.queues) do
  local esc = '[]'
  if #r.escalation > 0 then esc = cjson.encode(r.escalation) end
  redis.call('HSET', K.queue(q), 'strategy', r.strategy, 'priority', r.priority, 'max_wait', r.max_wait,
    'max_length', r.max_length, 'wrapup', r.wrapup, 'ring_timeout', r.ring_timeout,
    'service_level', r.service_level, 'sl_target', r.sl_target or 0.8, 'miss_limit', r.miss_limit, 'skills', enc(r.skills),
    'escalation', esc, 'on_timeout', cjson.encode(r.on_timeout), 'on_full', cjson.encode(r.on_full),
    'announce_every', r.announce.position_every, 'announce_ewt', r.announce.ewt and 1 or 0)
  redis.call('SADD', K.queues(), q)
  redis.call('DEL', K.members(q), K.staffed(q))
end
redis.call('DEL', K.pause_rules())
local pr = rules.defaults and rules.defaults.pause_reasons
if type(pr) == 'table' then
  for reason, r in pairs(pr) do
    redis.call('HSET', K.pause_rules(), reason, tostring(r.max) .. '|' .. (r.auto_ready and '1' or '0'))
  end
end
new_epoch(redis.sha1hex(ARGV[4]))
for _, a in ipairs(redis.call('SMEMBERS', K.agents())) do
  if rules.agents[a] == nil then
    redis.call('ZREM', K.wrapups(), a)
    redis.call('ZREM', K.pause_due(), a)
    redis.call('DEL', K.agent(a))
    redis.call('SREM', K.agents(), a)
  end
end
for a, r in pairs(rules.agents) do
  redis.call('HSET', K.agent(a), 'name', r.name, 'uri', r.uri, 'skills', enc(r.skills),
    'queues', enc(r.queues), 'max_offers', r.max_offers)
  if not redis.call('HGET', K.agent(a), 'state') then
    redis.call('HSET', K.agent(a), 'state', 'logged_out', 'since', NOW, 'last_free', 0)
  end
  local st = redis.call('HGET', K.agent(a), 'state')
  if st == 'paused' then   -- a reason that now has auto_ready ends pauses already running
    local f = redis.call('HMGET', K.agent(a), 'pause_reason', 'since')
    local rule = pause_rule(f[1])
    if rule and rule.auto and rule.max > 0 then
      redis.call('ZADD', K.pause_due(), num(f[2], NOW) + rule.max, a)
    else
      redis.call('ZREM', K.pause_due(), a)
    end
  end
  for q, _ in pairs(r.queues) do
    redis.call('SADD', K.members(q), a)
    if st ~= 'paused' and st ~= 'logged_out' then redis.call('SADD', K.staffed(q), a) end
  end
  redis.call('SADD', K.agents(), a)
end
local back = {}
for _, a in ipairs(available) do
  local ag = agent_get(a)
  if ag then
    enter_free_sets(ag)
    back[#back + 1] = ag
  end
end
redis.call('SET', K.rules(), ARGV[4])
for _, ag in ipairs(back) do match_agent(ag) end
return {'ok'}
