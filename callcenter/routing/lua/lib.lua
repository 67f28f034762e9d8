-- Shared routing library, prepended (after the generated key builders K.*) to every script.
--
-- Every script gets ARGV[1] = key prefix, ARGV[2] = now (unix seconds, from the caller so tests
-- control time), ARGV[3] = today's date (YYYYMMDD, for the daily counters); its own ARGV follow.
-- KEYS is empty: matching discovers agents and calls while it runs, so their keys cannot be
-- declared up front. Keys are built by K.* which scripts.py generates from routing/keys.py, the
-- single definition of the key scheme. This needs a single Redis (or one replica set), not Cluster.
--
-- Invariants every script keeps (the concurrency test checks them from outside):
--   * an agent is in free(q) iff its state is 'available' and q is one of its queues;
--   * a call is in waiting(q) iff its state is 'waiting' and q is in its queue list;
--   * an agent in 'reserved' has exactly one offer; a call in 'offered' has 1..n (ring_all) offers;
--   * an offer exists iff it has a lease.

local SCAN = 50          -- how deep into a sorted set one match looks for a skill fit
local RINGALL_MAX = 20   -- ring_all rings at most this many phones at once
local GRACE = 3          -- seconds a lease outlives the ring timeout before tick() reclaims it

local function num(x, default)
  local n = tonumber(x)
  if n == nil then return default end
  return n
end

local function event(worker, ev)
  if worker and worker ~= '' then
    redis.call('RPUSH', K.worker_events(worker), cjson.encode(ev))
  end
end

local QC = {}
local function qconf(q)
  if QC[q] then return QC[q] end
  local f = redis.call('HMGET', K.queue(q), 'strategy', 'ring_timeout', 'wrapup', 'miss_limit',
    'service_level', 'skills', 'escalation', 'max_wait', 'on_timeout', 'aht', 'max_length', 'priority')
  if not f[1] then return nil end
  local c = {
    strategy = f[1], ring_timeout = num(f[2], 15), wrapup = num(f[3], 0), miss_limit = num(f[4], 3),
    service_level = num(f[5], 20), skills = cjson.decode(f[6] or '{}'),
    escalation = cjson.decode(f[7] or '[]'), max_wait = num(f[8], 0),
    on_timeout = cjson.decode(f[9] or '{"action":"voicemail"}'), aht = num(f[10], 0),
    max_length = num(f[11], 0), priority = num(f[12], 0),
  }
  QC[q] = c
  return c
end

local function stat(q, field, by)
  redis.call('HINCRBYFLOAT', K.stats(q, DAY), field, by or 1)
end

local function split(s)
  local out = {}
  if s then
    for part in string.gmatch(s, '[^,]+') do out[#out + 1] = part end
  end
  return out
end

local function skills_ok(have, need)
  for skill, min in pairs(need) do
    if num(have[skill], 0) < num(min, 0) then return false end
  end
  return true
end

-- The free-set score of agent a in queue q: lower is offered first.
local function agent_score(q, qc, a, weight)
  local f = redis.call('HMGET', K.agent(a), 'last_free', 'calls', 'talk', 'skills', 'rr:' .. q)
  local last_free = num(f[1], 0)
  local s = qc.strategy
  if s == 'fewest_calls' then
    return num(f[2], 0) * 1e10 + last_free
  elseif s == 'least_talk_time' then
    return num(f[3], 0)
  elseif s == 'round_robin' then
    return num(f[5], 0)
  elseif s == 'skill_weighted' then
    local have = cjson.decode(f[4] or '{}')
    local total = 0
    for skill, _ in pairs(qc.skills) do total = total + num(have[skill], 0) end
    if next(qc.skills) == nil then total = 1 end
    return -(total * math.max(num(weight, 1), 1)) * 1e10 + last_free
  end
  return last_free  -- longest_idle, ring_all
end

local function agent_queues(a)
  return cjson.decode(redis.call('HGET', K.agent(a), 'queues') or '{}')
end

local function leave_free_sets(a, queues)
  for q, _ in pairs(queues or agent_queues(a)) do redis.call('ZREM', K.free(q), a) end
end

local function enter_free_sets(a)
  for q, w in pairs(agent_queues(a)) do
    local qc = qconf(q)
    if qc then redis.call('ZADD', K.free(q), agent_score(q, qc, a, w), a) end
  end
end

local function close_pause(a)
  local f = redis.call('HMGET', K.agent(a), 'state', 'since', 'pause_reason')
  if f[1] == 'paused' then
    redis.call('HINCRBYFLOAT', K.pauses(a), f[3] or 'other', math.max(0, NOW - num(f[2], NOW)))
  end
end

local function set_state(a, state)
  redis.call('HSET', K.agent(a), 'state', state, 'since', NOW)
end

local function pause_agent(a, reason)
  close_pause(a)
  leave_free_sets(a)
  redis.call('ZREM', K.wrapups(), a)
  set_state(a, 'paused')
  redis.call('HSET', K.agent(a), 'pause_reason', reason)
  redis.call('HDEL', K.agent(a), 'pending', 'offer', 'call')
end

local function logout_agent(a)
  close_pause(a)
  leave_free_sets(a)
  redis.call('ZREM', K.wrapups(), a)
  set_state(a, 'logged_out')
  redis.call('HDEL', K.agent(a), 'pending', 'offer', 'call', 'pause_reason')
end

local function drop_offer(oid)
  local o = redis.call('HMGET', K.offer(oid), 'call', 'agent', 'queue', 'worker', 'expires', 'kind')
  redis.call('DEL', K.offer(oid))
  redis.call('ZREM', K.leases(), oid)
  if not o[1] then return nil end
  return {call = o[1], agent = o[2], queue = o[3], worker = o[4], expires = num(o[5], 0), kind = o[6]}
end

local function reserve(c, agents, q, qc)
  local cf = redis.call('HMGET', K.call(c), 'owner', 'kind', 'cbnum', 'queues')
  for _, wq in ipairs(cjson.decode(cf[4])) do redis.call('ZREM', K.waiting(wq), c) end
  redis.call('ZREM', K.escalations(), c)
  local ids = {}
  for _, a in ipairs(agents) do
    local oid = 'o' .. redis.call('INCR', K.seq())
    leave_free_sets(a)
    set_state(a, 'reserved')
    redis.call('HSET', K.agent(a), 'offer', oid, 'call', c)
    if qc.strategy == 'round_robin' then
      redis.call('HSET', K.agent(a), 'rr:' .. q, redis.call('HINCRBY', K.queue(q), 'rr', 1))
    end
    local expires = NOW + qc.ring_timeout + GRACE
    redis.call('HSET', K.offer(oid), 'call', c, 'agent', a, 'queue', q, 'worker', cf[1],
      'kind', cf[2], 'expires', expires)
    redis.call('ZADD', K.leases(), expires, oid)
    local offer = {offer_id = oid, call_id = c, agent_id = a, agent_uri = redis.call('HGET', K.agent(a), 'uri'),
      queue = q, ring_timeout = qc.ring_timeout, kind = cf[2]}
    if cf[3] then offer.callback_number = cf[3] end
    redis.call('RPUSH', K.worker_offers(cf[1]), cjson.encode(offer))
    ids[#ids + 1] = oid
  end
  redis.call('HSET', K.call(c), 'state', 'offered', 'offers', table.concat(ids, ','), 'offer_queue', q)
  stat(q, 'offers', #ids)
  return #ids
end

-- A waiting call looks for the best free agent in its queues (primary first, then overflow).
local function match_call(c, exclude)
  local cf = redis.call('HMGET', K.call(c), 'state', 'queues', 'skills')
  if cf[1] ~= 'waiting' then return 0 end
  local need = cjson.decode(cf[3])
  for _, q in ipairs(cjson.decode(cf[2])) do
    local qc = qconf(q)
    if qc then
      local chosen = {}
      for _, a in ipairs(redis.call('ZRANGE', K.free(q), 0, SCAN - 1)) do
        if a ~= exclude then
          local af = redis.call('HMGET', K.agent(a), 'state', 'skills')
          if af[1] ~= 'available' then
            redis.call('ZREM', K.free(q), a)  -- self-heal; should not happen
          elseif skills_ok(cjson.decode(af[2] or '{}'), need) then
            chosen[#chosen + 1] = a
            if qc.strategy ~= 'ring_all' or #chosen >= RINGALL_MAX then break end
          end
        end
      end
      if #chosen > 0 then return reserve(c, chosen, q, qc) end
    end
  end
  return 0
end

-- A free agent takes the best waiting call across its queues: priority, then the agent's
-- weight in that queue, then the longest wait.
local function match_agent(a, exclude)
  local af = redis.call('HMGET', K.agent(a), 'state', 'skills', 'queues')
  if af[1] ~= 'available' then return 0 end
  local have = cjson.decode(af[2] or '{}')
  local best = nil
  for q, w in pairs(cjson.decode(af[3] or '{}')) do
    w = num(w, 0)
    for _, c in ipairs(redis.call('ZRANGE', K.waiting(q), 0, SCAN - 1)) do
      if c ~= exclude then
        local f = redis.call('HMGET', K.call(c), 'skills', 'prio', 'enq')
        if f[1] and skills_ok(have, cjson.decode(f[1])) then
          local p, e = num(f[2], 0), num(f[3], 0)
          if best == nil or p > best.p or (p == best.p and (w > best.w or (w == best.w and e < best.e))) then
            best = {c = c, q = q, p = p, w = w, e = e}
          end
          break  -- the set is ordered by priority then enqueue time: the first fit is this queue's best
        end
      end
    end
  end
  if best == nil then return 0 end
  return reserve(best.c, {a}, best.q, qconf(best.q))
end

local function make_available(a, exclude_call)
  set_state(a, 'available')
  redis.call('HSET', K.agent(a), 'last_free', NOW)
  redis.call('HDEL', K.agent(a), 'offer', 'call', 'pause_reason')
  enter_free_sets(a)
  return match_agent(a, exclude_call)
end

-- The agent has nothing to do: honour a pending logout/pause, else become available and match.
local function agent_free(a, exclude_call)
  local pend = redis.call('HGET', K.agent(a), 'pending')
  redis.call('HDEL', K.agent(a), 'pending')
  if pend == 'logout' then
    logout_agent(a)
  elseif pend and string.sub(pend, 1, 6) == 'pause:' then
    pause_agent(a, string.sub(pend, 7))
  elseif redis.call('EXISTS', K.agent(a)) == 1 then
    make_available(a, exclude_call)
  end
end

local function schedule_escalation(c)
  local f = redis.call('HMGET', K.call(c), 'queue', 'enq', 'esc')
  local qc = qconf(f[1])
  if not qc then return end
  local enq, i = num(f[2], NOW), num(f[3], 1)
  local due = nil
  local step = qc.escalation[i]
  if step then due = enq + num(step.after, 0) end
  if qc.max_wait > 0 and (due == nil or enq + qc.max_wait < due) then due = enq + qc.max_wait end
  if due then redis.call('ZADD', K.escalations(), due, c) end
end

-- Put a call back in every queue it waits in, at the place its score says (its original place).
local function requeue(c)
  local f = redis.call('HMGET', K.call(c), 'queues', 'score')
  redis.call('HSET', K.call(c), 'state', 'waiting')
  redis.call('HDEL', K.call(c), 'offers', 'offer_queue', 'agent')
  for _, q in ipairs(cjson.decode(f[1])) do
    if qconf(q) then redis.call('ZADD', K.waiting(q), f[2], c) end
  end
  schedule_escalation(c)
end

-- Remove every trace of a call from the routing state (its offers must be dealt with first).
local function forget_call(c)
  local f = redis.call('HMGET', K.call(c), 'queues', 'owner', 'cbnum')
  if not f[1] then return end
  for _, q in ipairs(cjson.decode(f[1])) do redis.call('ZREM', K.waiting(q), c) end
  redis.call('ZREM', K.escalations(), c)
  if f[2] then redis.call('SREM', K.worker_calls(f[2]), c) end
  if f[3] and redis.call('GET', K.callback(f[3])) == c then redis.call('DEL', K.callback(f[3])) end
  redis.call('DEL', K.call(c))
end

-- Cancel all ringing offers of a call; their agents become free (no miss counted).
local function cancel_offers(c, reason, except)
  local f = redis.call('HMGET', K.call(c), 'offers', 'owner')
  local freed = {}
  for _, oid in ipairs(split(f[1])) do
    if oid ~= except then
      local o = drop_offer(oid)
      if o then
        event(f[2], {kind = 'offer_cancelled', offer_id = oid, call_id = c, agent_id = o.agent, reason = reason})
        freed[#freed + 1] = o.agent
      end
    end
  end
  redis.call('HDEL', K.call(c), 'offers')
  return freed
end

local function fallback(c, fb, reason)
  local f = redis.call('HMGET', K.call(c), 'owner', 'queue', 'cbnum', 'kind')
  stat(f[2], 'fallback')
  local ev = {kind = 'fallback', call_id = c, queue = f[2], action = fb.action, target = fb.target,
    reason = reason, call_kind = f[4]}
  if f[3] then ev.callback_number = f[3] end
  event(f[1], ev)
  forget_call(c)
end

-- One due escalation check for call c: apply every step whose time has come.
local function escalate(c)
  local f = redis.call('HMGET', K.call(c), 'state', 'queue', 'enq', 'esc', 'skills', 'queues', 'prio', 'owner')
  redis.call('ZREM', K.escalations(), c)
  if f[1] ~= 'waiting' then return end  -- requeue() reschedules when an offer fails
  local qc = qconf(f[2])
  if not qc then return end
  local enq, i = num(f[3], NOW), num(f[4], 1)
  local need, queues, prio = cjson.decode(f[5]), cjson.decode(f[6]), num(f[7], 0)
  local changed = false
  while true do
    local step = qc.escalation[i]
    local step_due = step and enq + num(step.after, 0) or nil
    local timeout_due = qc.max_wait > 0 and enq + qc.max_wait or nil
    if timeout_due and timeout_due <= NOW and (step_due == nil or timeout_due < step_due) then
      fallback(c, qc.on_timeout, 'max_wait')
      return
    end
    if step_due == nil or step_due > NOW then break end
    if step.fallback and step.fallback ~= cjson.null then
      fallback(c, step.fallback, 'escalation')
      return
    end
    if step.relax_skills then
      for skill, lvl in pairs(step.relax_skills) do
        if need[skill] and num(need[skill], 0) > num(lvl, 0) then need[skill] = num(lvl, 0) end
      end
    end
    local by = num(step.relax_by, 0)
    if by > 0 then
      for skill, lvl in pairs(need) do need[skill] = math.max(1, num(lvl, 1) - by) end
    end
    local score = redis.call('HGET', K.call(c), 'score')
    if num(step.raise_priority, 0) > 0 then
      prio = prio + num(step.raise_priority, 0)
      score = -prio * 1e10 + enq
      for _, q in ipairs(queues) do redis.call('ZADD', K.waiting(q), score, c) end
    end
    for _, oq in ipairs(step.overflow or {}) do
      local present = false
      for _, q in ipairs(queues) do if q == oq then present = true end end
      if not present and qconf(oq) then
        queues[#queues + 1] = oq
        redis.call('ZADD', K.waiting(oq), score, c)
      end
    end
    event(f[8], {kind = 'escalated', call_id = c, step = i})
    i = i + 1
    changed = true
    if next(need) == nil then need = {} end
    redis.call('HSET', K.call(c), 'esc', i, 'prio', prio, 'score', score, 'queues', cjson.encode(queues),
      'skills', next(need) == nil and '{}' or cjson.encode(need))
  end
  schedule_escalation(c)
  if changed then match_call(c) end
end

-- An offer did not turn into a conversation: the call goes back to its place, the agent gets a miss.
local function offer_failed(oid, reason, count_miss)
  local o = drop_offer(oid)
  if not o then return 0 end
  local c, a = o.call, o.agent
  local qc = qconf(o.queue) or {miss_limit = 3}
  if redis.call('HGET', K.agent(a), 'offer') == oid then
    redis.call('HDEL', K.agent(a), 'offer', 'call')
    if count_miss then
      stat(o.queue, 'missed')
      local misses = redis.call('HINCRBY', K.agent(a), 'misses', 1)
      if misses >= qc.miss_limit then
        pause_agent(a, 'missed_offers')
        event(o.worker, {kind = 'agent_auto_paused', agent_id = a, misses = misses})
      end
    end
  end
  local cf = redis.call('HMGET', K.call(c), 'state', 'offers')
  if cf[1] == 'offered' then
    local rest = {}
    for _, x in ipairs(split(cf[2])) do if x ~= oid then rest[#rest + 1] = x end end
    if #rest == 0 then
      requeue(c)
      match_call(c, a)
    else
      redis.call('HSET', K.call(c), 'offers', table.concat(rest, ','))
    end
  end
  if redis.call('HGET', K.agent(a), 'state') == 'reserved' then agent_free(a, c) end
  return 1
end
