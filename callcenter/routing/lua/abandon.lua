-- The caller hung up while waiting or while an agent's phone rang.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] call id [5] '1' to drop a callback too
-- Returns the state the call was in ('' if unknown). Connected calls are left to call_finished.
local ci = call_get(ARGV[4])
if ci == nil then return '' end
local state = ci.state
if state == 'connected' then return 'connected' end
-- A callback no longer needs the caller on the line: only an explicit cancel removes it.
if ci.kind == 'callback' and ARGV[5] ~= '1' then return 'callback' end
local freed = {}
if state == 'offered' then freed = cancel_offers(ci, 'abandoned') end
forget_call(ci)
for _, ag in ipairs(freed) do agent_free(ag) end
stat(ci.queue, 'abandoned')
return state
