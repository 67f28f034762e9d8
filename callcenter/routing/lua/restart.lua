-- This process has just claimed its worker id (Router.claim): whatever a previous run under that id
-- left in routing is from a process that died with its callers' media. Close it out as for a dead
-- worker (reap_worker), keeping the id registered.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] worker id
-- Returns the closed-out calls as a JSON object: call id -> direction.
local me = ARGV[4]
local closed = {}
reap_worker(me, me, closed)
redis.call('ZADD', K.workers(), NOW_S, me)
if next(closed) == nil then return '{}' end
return cjson.encode(closed)
