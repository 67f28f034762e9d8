-- A waiting caller leaves a callback number: the call keeps its place in the queue; the caller may
-- hang up. One callback per number.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] call id [5] number
-- Returns 'ok' | 'duplicate' | 'gone'.
local ci = call_get(ARGV[4])
if ci == nil or (ci.state ~= 'waiting' and ci.state ~= 'offered') then return 'gone' end
if ci.cbnum and ci.cbnum ~= ARGV[5] then redis.call('DEL', K.callback(ci.cbnum)) end
if not to_callback(ci, ARGV[5]) then return 'duplicate' end
return 'ok'
