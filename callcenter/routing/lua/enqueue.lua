-- Enqueue a call; a free agent who fits takes it at once, else it waits in the queue.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day
--   [4] call id [5] queue [6] required skills JSON {skill: min level} [7] priority
--   [8] caller [9] attributes JSON [10] owner worker id
-- Returns {status, offers}: status 'ok' | 'no_queue' | 'duplicate' | 'full'.
local c, q, owner = ARGV[4], ARGV[5], ARGV[10]
local qc = qconf(q)
if not qc then return {'no_queue', 0} end
if redis.call('EXISTS', K.call(c)) == 1 then return {'duplicate', 0} end
if qc.max_length > 0 and redis.call('ZCARD', K.waiting(q)) >= qc.max_length then
  stat(q, 'rejected_full')
  return {'full', 0}
end
local need = {}
for skill, lvl in pairs(qc.skills) do need[skill] = lvl end
for skill, lvl in pairs(cjson.decode(ARGV[6])) do
  if need[skill] == nil or num(lvl, 0) > num(need[skill], 0) then need[skill] = num(lvl, 0) end
end
local prio = num(ARGV[7], 0) + qc.priority
local score = -prio * 1e10 + NOW
local ci = {id = c, state = 'new', queue = q, queues = {q}, need = need, sig = sig_of(need), prio = prio,
  enq = NOW, score = score, owner = owner, kind = 'call', esc = 1}
-- (the owner is in workers(): Router heartbeats before its first enqueue, so a crash is noticed)
redis.call('SADD', K.worker_calls(owner), c)
stat(q, 'offered')
-- A free agent that fits has no better call waiting (it would have taken it when it became free),
-- so the newcomer may take it before entering the queue. The call hash is written once, after the
-- match, in its final state (reserve() leaves a fresh call's hash to us).
local n = match_call(ci)
local skills = next(need) == nil and '{}' or cjson.encode(need)
if n == 0 then
  ci.state = 'waiting'
  local f = {'state', 'waiting', 'queue', q, 'queues', cjson.encode({q}),
    'skills', skills, 'prio', prio, 'enq', NOW, 'score', score,
    'owner', owner, 'kind', 'call', 'esc', 1, 'caller', ARGV[8], 'attrs', ARGV[9], 'sig', ci.sig}
  if schedule_escalation(ci, true) then f[#f + 1], f[#f + 2] = 'escq', 1 end
  redis.call('HSET', K.call(c), unpack(f))
  add_waiting(c, q, score, ci.sig)
else
  redis.call('HSET', K.call(c), 'state', 'offered', 'queue', q, 'queues', cjson.encode({q}),
    'skills', skills, 'prio', prio, 'enq', NOW, 'score', score,
    'owner', owner, 'kind', 'call', 'esc', 1, 'caller', ARGV[8], 'attrs', ARGV[9], 'sig', ci.sig,
    'offers', ci.offers, 'offer_queue', ci.offer_queue)
end
return {'ok', n}
