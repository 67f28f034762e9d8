-- The agent answered an offer: the call is connected, sibling ring_all offers are cancelled.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] offer id [5] call id
-- Returns 1 if connected, 0 if the lease had expired or the call is gone.
local oid, cid = ARGV[4], ARGV[5]
local a = offer_agent(oid)
local f = a and redis.call('HMGET', K.agent(a), 'offer', 'call', 'o_exp') or {}
if f[1] ~= oid or (cid and cid ~= '' and f[2] ~= cid) then
  -- idempotent: a client retry after a lost reply finds the call already connected by this offer
  if cid and redis.call('HGET', K.call(cid), 'answered_offer') == oid then return 1 end
  return 0
end
if num(f[3], 0) < NOW then
  offer_failed(oid, 'expired', true)
  return 0
end
local c = f[2]
-- only the fields this script needs: every field read is a measurable part of the answer's cost
local cf = redis.call('HMGET', K.call(c), 'state', 'offers', 'enq', 'owner', 'offer_queue')
local ci = cf[1] and {id = c, state = cf[1], offers = cf[2], enq = num(cf[3], NOW), owner = cf[4]} or nil
local q = cf[5]
if ci == nil or ci.state ~= 'offered' then
  offer_failed(oid, 'gone', false)
  return 0
end
redis.call('ZREM', K.leases(), oid)
if ci.offers ~= oid then
  for _, other in ipairs(cancel_offers(ci, 'answered_elsewhere', oid)) do agent_free(other, c) end
end
redis.call('HSET', K.call(c), 'state', 'connected', 'agent', a, 'answered', NOW_S, 'offer_queue', q, 'offers', '',
  'answered_offer', oid)
-- offer = '' ends the offer in the same write (agent_get reads '' as none)
redis.call('HSET', K.agent(a), 'state', 'on_call', 'since', NOW_S, 'misses', '0', 'call', c, 'offer', '')
agent_changed({id = a, queues_raw = redis.call('HGET', K.agent(a), 'queues') or '{}'}, 'on_call', nil, c)
local wait = NOW - ci.enq
local qc = qconf(q)
stat(q, 'answered')
stat_ms(q, 'wait_ms', wait)
if qc and wait <= qc.service_level then stat(q, 'answered_sl') end
return 1
