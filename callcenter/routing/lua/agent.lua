-- Agent actions from the agent API: login, logout, ready, pause, set_skills; wrap_up from the call layer.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] agent id [5] action
--   [6] argument: login -> '1' to go ready at once; pause -> reason; set_skills -> skills JSON;
--   wrap_up -> '<talk seconds>|<wrap-up seconds>' (wrap-up '': the longest of the agent's queues)
-- Returns {status, state}: status 'ok' | 'pending' (applied when the current call ends) |
--   'no_agent' | 'logged_out'.
local a, action, arg = ARGV[4], ARGV[5], ARGV[6]
local ag = agent_get(a)
if ag == nil then return {'no_agent', ''} end
local state = ag.state
local status = 'ok'
if action == 'login' then
  if state == 'logged_out' then
    redis.call('HSET', K.agent(a), 'calls', 0, 'talk', 0, 'misses', 0, 'login_at', NOW)
    ag.calls, ag.talk = 0, 0
    if arg == '1' then make_available(ag) else pause_agent(ag, 'login') end
  end
elseif action == 'logout' then
  if state == 'reserved' then
    -- the pending flag makes offer_failed's agent_free log the agent out instead of re-matching
    redis.call('HSET', K.agent(a), 'pending', 'logout')
    offer_failed(ag.offer, 'logout', false)
  elseif state == 'on_call' then
    redis.call('HSET', K.agent(a), 'pending', 'logout')
    status = 'pending'
  elseif state ~= 'logged_out' then
    logout_agent(ag)
  end
elseif action == 'ready' then
  if state == 'logged_out' then return {'logged_out', state} end
  if state == 'paused' then
    close_pause(ag)
    redis.call('HSET', K.agent(a), 'misses', 0)
    make_available(ag)
  elseif state == 'wrap_up' then
    redis.call('ZREM', K.wrapups(), a)
    make_available(ag)
  else
    redis.call('HDEL', K.agent(a), 'pending')
  end
elseif action == 'pause' then
  if state == 'logged_out' then return {'logged_out', state} end
  if state == 'reserved' or state == 'on_call' then
    redis.call('HSET', K.agent(a), 'pending', 'pause:' .. arg)
    status = 'pending'
  else
    pause_agent(ag, arg)
  end
elseif action == 'wrap_up' then
  -- An agent's own call ended (click-to-call: paused 'outbound' meanwhile; a transfer's target: 'transfer'):
  -- counted like a queue call and after-call work as call_finished gives it, then free (tick). Another pause
  -- reason taken meanwhile stays.
  if state ~= 'paused' or (ag.pause_reason ~= 'outbound' and ag.pause_reason ~= 'transfer') then
    return {status, state}
  end
  local talk, wrap = string.match(arg, '^([%d.]+)|([%d.]*)$')
  talk, wrap = num(talk, 0), tonumber(wrap)
  if wrap == nil then
    wrap = 0
    for q, _ in pairs(ag_queues(ag)) do
      local qc = qconf(q)
      if qc and qc.wrapup > wrap then wrap = qc.wrapup end
    end
  end
  close_pause(ag)
  ag.calls, ag.talk = ag.calls + 1, ag.talk + talk
  if wrap > 0 then
    set_staffed(ag, true)
    redis.call('HSET', K.agent(a), 'calls', ag.calls, 'talk', ag.talk, 'state', 'wrap_up', 'since', NOW_S)
    redis.call('HDEL', K.agent(a), 'pause_reason', 'pending', 'call', 'offer')
    redis.call('ZADD', K.wrapups(), NOW + wrap, a)
    agent_changed(ag, 'wrap_up')
  else
    make_available(ag)
  end
elseif action == 'set_skills' then
  redis.call('HSET', K.agent(a), 'skills', arg)
  agent_event(ag, {type = 'agent.skills', skills = cjson.decode(arg)})
  if state == 'available' then
    ag.skills_raw, ag.skills = arg, nil
    leave_free_sets(ag)
    enter_free_sets(ag)
    match_agent(ag)
  end
end
return {status, redis.call('HGET', K.agent(a), 'state')}
