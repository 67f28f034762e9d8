-- The caller hung up while waiting or while an agent's phone rang.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] call id [5] '1' to drop a callback too
-- Returns the state the call was in ('' if unknown). Connected calls are left to call_finished.
local c = ARGV[4]
local f = redis.call('HMGET', K.call(c), 'state', 'kind', 'queue')
if not f[1] then return '' end
if f[1] == 'connected' then return 'connected' end
-- A callback no longer needs the caller on the line: only an explicit cancel removes it.
if f[2] == 'callback' and ARGV[5] ~= '1' then return 'callback' end
if f[1] == 'offered' then
  local freed = cancel_offers(c, 'abandoned')
  forget_call(c)
  for _, a in ipairs(freed) do
    if redis.call('HGET', K.agent(a), 'state') == 'reserved' then agent_free(a) end
  end
else
  forget_call(c)
end
stat(f[3], 'abandoned')
return f[1]
