-- Enqueue a call; a free agent who fits takes it at once, else it waits in the queue.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day
--   [4] call id [5] queue [6] required skills JSON {skill: min level} [7] priority
--   [8] caller [9] attributes JSON [10] owner worker id
--   [11] enqueue time ('': now; a call transferred back into a queue keeps its first)
-- Returns {status, offers}: status 'ok' | 'no_queue' | 'duplicate' | 'full'.
local c, q, owner = ARGV[4], ARGV[5], ARGV[10]
local qc = qconf(q)
if not qc then return {'no_queue', 0} end
if redis.call('EXISTS', K.call(c)) == 1 then return {'duplicate', 0} end
if qc.max_length > 0 and redis.call('ZCARD', K.waiting(q)) >= qc.max_length then
  stat(q, 'rejected_full')
  return {'full', 0}
end
-- The requirement (queue skills raised by the call's own) and its signature, kept per distinct
-- skills JSON in the queue's cached config: most callers of a queue send the same one.
local req = qc.reqs and qc.reqs[ARGV[6]]
if req == nil then
  local need = {}
  for skill, lvl in pairs(qc.skills) do need[skill] = lvl end
  for skill, lvl in pairs(cjson.decode(ARGV[6])) do
    if need[skill] == nil or num(lvl, 0) > num(need[skill], 0) then need[skill] = num(lvl, 0) end
  end
  local sig = sig_of(need)
  req = {sig = sig, need = parse_sig(sig)}
  qc.reqs = qc.reqs or {}
  if qc.nreqs == nil or qc.nreqs < 1000 then
    qc.reqs[ARGV[6]], qc.nreqs = req, (qc.nreqs or 0) + 1
  end
end
-- the priority as the client sent it when the queue adds none (no number formatting)
local prio, prio_s = num(ARGV[7], 0) + qc.priority, ARGV[7]
if qc.priority ~= 0 or not string.match(prio_s, '^-?%d+$') then prio_s = tostring(prio) end
local enq, enq_s = NOW, NOW_S
if ARGV[11] and ARGV[11] ~= '' then enq, enq_s = num(ARGV[11], NOW), ARGV[11] end
local ci = {id = c, state = 'new', queue = q, need = req.need, sig = req.sig, prio = prio,
  enq = enq, score = score_of(prio, enq), owner = owner, kind = 'call', esc = 1}
-- (the owner is in workers(): Router heartbeats before its first enqueue, so a crash is noticed)
redis.call('SADD', K.worker_calls(owner), c)
stat(q, 'offered')
-- A free agent that fits has no better call waiting (it would have taken it when it became free),
-- so the newcomer may take it before entering the queue. The call hash is written once, after the
-- match, in its final state (reserve() leaves a fresh call's hash to us).
local n = match_call(ci)
local f = {'state', 'waiting', 'queue', q, 'sig', ci.sig, 'prio', prio_s, 'enq', enq_s, 'owner', owner,
  'caller', ARGV[8]}
if ARGV[9] ~= '{}' and ARGV[9] ~= '' then f[#f + 1], f[#f + 2] = 'attrs', ARGV[9] end
if n == 0 then
  ci.state = 'waiting'
  if schedule_escalation(ci, true) then f[#f + 1], f[#f + 2] = 'escq', '1' end
  redis.call('HSET', K.call(c), unpack(f))
  add_waiting(c, q, score_str(ci.score), ci.sig)
  call_queued(c, q, prio)
else
  f[2] = 'offered'
  f[#f + 1], f[#f + 2], f[#f + 3], f[#f + 4] = 'offers', ci.offers, 'offer_queue', ci.offer_queue
  redis.call('HSET', K.call(c), unpack(f))
  publish({type = 'call.queued', call_id = c, queue = q, priority = prio, position = 0})
end
return {'ok', n}
