-- A waiting caller leaves a callback number: the call keeps its place in the queue; the caller may
-- hang up. One callback per number.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] call id [5] number
-- Returns 'ok' | 'duplicate' | 'gone'.
local c, n = ARGV[4], ARGV[5]
local f = redis.call('HMGET', K.call(c), 'state', 'kind')
if f[1] ~= 'waiting' and f[1] ~= 'offered' then return 'gone' end
local holder = redis.call('GET', K.callback(n))
if holder and holder ~= c and redis.call('EXISTS', K.call(holder)) == 1 then return 'duplicate' end
redis.call('SET', K.callback(n), c)
redis.call('HSET', K.call(c), 'kind', 'callback', 'cbnum', n)
return 'ok'
