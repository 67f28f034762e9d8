-- Agent actions from the agent API: login, logout, ready, pause, set_skills.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] agent id [5] action
--   [6] argument: login -> '1' to go ready at once; pause -> reason; set_skills -> skills JSON
-- Returns {status, state}: status 'ok' | 'pending' (applied when the current call ends) |
--   'no_agent' | 'logged_out'.
local a, action, arg = ARGV[4], ARGV[5], ARGV[6]
if redis.call('EXISTS', K.agent(a)) == 0 then return {'no_agent', ''} end
local state = redis.call('HGET', K.agent(a), 'state') or 'logged_out'
local status = 'ok'
if action == 'login' then
  if state == 'logged_out' then
    redis.call('HSET', K.agent(a), 'calls', 0, 'talk', 0, 'misses', 0, 'login_at', NOW)
    if arg == '1' then agent_free(a) else pause_agent(a, 'login') end
  end
elseif action == 'logout' then
  if state == 'reserved' then
    offer_failed(redis.call('HGET', K.agent(a), 'offer'), 'logout', false)
    logout_agent(a)
  elseif state == 'on_call' then
    redis.call('HSET', K.agent(a), 'pending', 'logout')
    status = 'pending'
  elseif state ~= 'logged_out' then
    logout_agent(a)
  end
elseif action == 'ready' then
  if state == 'logged_out' then return {'logged_out', state} end
  if state == 'paused' then
    close_pause(a)
    redis.call('HSET', K.agent(a), 'misses', 0)
    redis.call('HDEL', K.agent(a), 'pending')
    make_available(a)
  elseif state == 'wrap_up' then
    redis.call('ZREM', K.wrapups(), a)
    redis.call('HDEL', K.agent(a), 'pending')
    make_available(a)
  else
    redis.call('HDEL', K.agent(a), 'pending')
  end
elseif action == 'pause' then
  if state == 'logged_out' then return {'logged_out', state} end
  if state == 'reserved' or state == 'on_call' then
    redis.call('HSET', K.agent(a), 'pending', 'pause:' .. arg)
    status = 'pending'
  else
    pause_agent(a, arg)
  end
elseif action == 'set_skills' then
  redis.call('HSET', K.agent(a), 'skills', arg)
  if state == 'available' then
    leave_free_sets(a)
    enter_free_sets(a)
    match_agent(a)
  end
end
return {status, redis.call('HGET', K.agent(a), 'state')}
