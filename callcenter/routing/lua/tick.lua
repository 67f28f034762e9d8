-- Periodic housekeeping, run by every worker about once a second (idempotent, any worker may run it):
-- expired leases, wrap-up ends, due escalations, reaping dead workers, matching retries.
-- KEYS: none (see lib.lua). ARGV: [1] prefix [2] now [3] day [4] this worker id
--   [5] seconds without heartbeat after which a worker is dead [6] batch size per kind
-- Returns {events JSON list for this worker, closed-out call ids JSON list}.
local me, dead_after, batch = ARGV[4], num(ARGV[5], 6), num(ARGV[6], 200)

for _, oid in ipairs(redis.call('ZRANGEBYSCORE', K.leases(), '-inf', NOW, 'LIMIT', 0, batch)) do
  offer_failed(oid, 'expired', true)
end

for _, a in ipairs(redis.call('ZRANGEBYSCORE', K.wrapups(), '-inf', NOW, 'LIMIT', 0, batch)) do
  redis.call('ZREM', K.wrapups(), a)
  if redis.call('HGET', K.agent(a), 'state') == 'wrap_up' then agent_free(a) end
end

for _, c in ipairs(redis.call('ZRANGEBYSCORE', K.escalations(), '-inf', NOW, 'LIMIT', 0, batch)) do
  escalate(c)
end

-- Dead workers: their callers' media died with them. Close those calls out (for CDRs) and free
-- their agents; callbacks need no media, so this worker adopts them instead.
local closed = {}
for _, w in ipairs(redis.call('ZRANGEBYSCORE', K.workers(), '-inf', NOW - dead_after)) do
  if w ~= me then
    local calls = redis.call('SMEMBERS', K.worker_calls(w))
    local adopt, close = {}, {}
    for _, c in ipairs(calls) do
      local f = redis.call('HMGET', K.call(c), 'state', 'kind', 'queues')
      if f[1] then
        if f[2] == 'callback' and f[1] ~= 'connected' then
          adopt[#adopt + 1] = c
        else
          close[#close + 1] = c
          -- out of every queue first, so agents freed below cannot be matched to a dying call
          for _, q in ipairs(cjson.decode(f[3])) do redis.call('ZREM', K.waiting(q), c) end
          redis.call('HSET', K.call(c), 'state', 'closing')
        end
      end
    end
    for _, c in ipairs(adopt) do
      redis.call('HSET', K.call(c), 'owner', me)
      redis.call('SADD', K.worker_calls(me), c)
      if redis.call('HGET', K.call(c), 'state') == 'offered' then
        for _, a in ipairs(cancel_offers(c, 'worker_died')) do
          redis.call('HSET', K.call(c), 'state', 'waiting')
          if redis.call('HGET', K.agent(a), 'state') == 'reserved' then agent_free(a, c) end
        end
        requeue(c)
        match_call(c)
      end
    end
    for _, c in ipairs(close) do
      local f = redis.call('HMGET', K.call(c), 'offers', 'agent', 'queue')
      local freed = {}
      for _, oid in ipairs(split(f[1])) do
        local o = drop_offer(oid)
        if o then freed[#freed + 1] = o.agent end
      end
      if f[2] and redis.call('HGET', K.agent(f[2]), 'call') == c then freed[#freed + 1] = f[2] end
      forget_call(c)
      redis.call('XADD', K.closed_calls(), 'MAXLEN', '~', 100000, '*', 'call_id', c, 'worker', w,
        'queue', f[3] or '', 'reason', 'worker_died', 'at', NOW)
      closed[#closed + 1] = c
      for _, a in ipairs(freed) do
        local st = redis.call('HGET', K.agent(a), 'state')
        if st == 'reserved' or st == 'on_call' then agent_free(a) end
      end
    end
    redis.call('DEL', K.worker_calls(w), K.worker_offers(w), K.worker_events(w))
    redis.call('ZREM', K.workers(), w)
  end
end

-- Matching retries: a match looks only SCAN deep, so a fit further down waits for the next event;
-- this sweep finds it within a second.
for _, q in ipairs(redis.call('SMEMBERS', K.queues())) do
  if redis.call('ZCARD', K.waiting(q)) > 0 then
    for _, a in ipairs(redis.call('ZRANGE', K.free(q), 0, 9)) do match_agent(a) end
  end
end

local events = redis.call('LRANGE', K.worker_events(me), 0, -1)
redis.call('DEL', K.worker_events(me))
return {events, cjson.encode(closed)}
