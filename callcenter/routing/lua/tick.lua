-- Periodic housekeeping, run by every worker about once a second (idempotent, any worker may run it):
-- expired leases, wrap-up ends, auto-ready pause ends, due escalations, reaping dead workers,
-- matching retries.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] this worker id
--   [5] seconds without heartbeat after which a worker is dead [6] batch size per kind
-- Returns {events JSON list for this worker, closed-out calls JSON object: call id -> direction}.
local me, dead_after, batch = ARGV[4], num(ARGV[5], 6), num(ARGV[6], 200)

for _, oid in ipairs(redis.call('ZRANGEBYSCORE', K.leases(), '-inf', NOW, 'LIMIT', 0, batch)) do
  offer_failed(oid, 'expired', true)
end

for _, a in ipairs(redis.call('ZRANGEBYSCORE', K.wrapups(), '-inf', NOW, 'LIMIT', 0, batch)) do
  redis.call('ZREM', K.wrapups(), a)
  local ag = agent_get(a)
  if ag and ag.state == 'wrap_up' then agent_free(ag) end
end

-- Pauses whose reason has auto_ready (defaults.pause_reasons) end by themselves when their time is
-- up; the rule is read again, so a reload that lengthened or removed it is honoured.
for _, a in ipairs(redis.call('ZRANGEBYSCORE', K.pause_due(), '-inf', NOW, 'LIMIT', 0, batch)) do
  redis.call('ZREM', K.pause_due(), a)
  local ag = agent_get(a)
  if ag and ag.state == 'paused' then
    local rule = pause_rule(ag.pause_reason)
    if rule and rule.auto and rule.max > 0 then
      if ag.pause_reason == 'no_phone' and not has_phone(a) then
        redis.call('ZADD', K.pause_due(), NOW + rule.max, a)   -- still no phone: phones.lua ends this pause
      elseif ag.since + rule.max <= NOW then
        close_pause(ag)
        redis.call('HSET', K.agent(a), 'misses', 0)
        event(me, {kind = 'agent_auto_ready', agent_id = a, reason = ag.pause_reason, paused = NOW - ag.since})
        make_available(ag)
      else
        redis.call('ZADD', K.pause_due(), ag.since + rule.max, a)
      end
    end
  end
end

for _, c in ipairs(redis.call('ZRANGEBYSCORE', K.escalations(), '-inf', NOW, 'LIMIT', 0, batch)) do
  escalate(c)
end

-- Dead workers: their callers' media died with them (see reap_worker in lib.lua).
local closed = {}
for _, w in ipairs(redis.call('ZRANGEBYSCORE', K.workers(), '-inf', NOW - dead_after)) do
  if w ~= me then reap_worker(w, me, closed) end
end

-- Matching retries: a caller looks only SCAN deep into the free agents, and a failed offer does
-- not re-offer the same caller to the same agent at once (no ping-pong); a freed agent, in turn,
-- finds its best caller exactly. So a fit missed that way is found here, within a second: the head
-- caller of every skill requirement looks deeper. One sweep per second across all workers (the
-- guard holds the script clock of the last sweep), so N workers do not multiply the cost.
local last = tonumber(redis.call('GET', K.retry_guard()))
if last == nil or last <= NOW - 0.9 or last > NOW + 60 then
  redis.call('SET', K.retry_guard(), NOW_S, 'PX', 60000)
  for _, q in ipairs(redis.call('SMEMBERS', K.queues())) do
    if redis.call('ZCARD', K.free(q)) > 0 then
      for _, sig in ipairs(redis.call('SMEMBERS', K.sigset(q))) do
        local head = redis.call('ZRANGE', K.waiting_sig(q, sig), '0', '0')[1]
        if head then match_call(call_get(head), nil, 200) end
      end
    end
  end
end

-- Signatures: see what other library versions added (the caches are dropped every tick), and once
-- a minute forget the ones no caller waits under any more (a new cache epoch), so an agent's
-- look-up stays one ZRANGE per requirement that is really waiting.
sigs_refresh()
local pruned = tonumber(redis.call('GET', K.sig_prune()))
if pruned == nil or pruned <= NOW - 60 or pruned > NOW + 600 then
  redis.call('SET', K.sig_prune(), NOW_S, 'EX', 3600)
  local gone = 0
  for _, q in ipairs(redis.call('SMEMBERS', K.queues())) do
    for _, sig in ipairs(redis.call('SMEMBERS', K.sigset(q))) do
      if redis.call('EXISTS', K.waiting_sig(q, sig)) == 0 then
        redis.call('SREM', K.sigset(q), sig)
        gone = gone + 1
      end
    end
  end
  if gone > 0 then new_epoch() end
end

local events = redis.call('LRANGE', K.worker_events(me), 0, -1)
redis.call('DEL', K.worker_events(me))
if next(closed) == nil then return {events, '{}'} end
return {events, cjson.encode(closed)}
