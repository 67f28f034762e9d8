-- Shared routing library: the top of the Redis Functions library that scripts.py builds; every
-- <name>.lua beside it becomes one function of that library.
--
-- Every script gets ARGV[1] = key prefix, ARGV[2] = now (unix seconds, from the caller so tests
-- control time), ARGV[3] = today's date (YYYYMMDD, for the daily counters); its own ARGV follow.
-- KEYS is empty: matching discovers agents and calls while it runs, so their keys cannot be
-- declared up front. Keys are built by K.* which scripts.py generates from routing/keys.py, the
-- single definition of the key scheme. This needs a single Redis (or one replica set), not Cluster.
--
-- Invariants every script keeps (the concurrency test checks them from outside):
--   * an agent is in free(q) iff its state is 'available' and q is one of its queues;
--   * a call is in waiting(q) iff its state is 'waiting' and q is in its queue list, and then also in
--     waiting_sig(q, its signature), counted in sigs(q). waiting(q) is the queue order (positions,
--     wallboard); the per-signature sets let a free agent find its best call with one ZRANGE per
--     requirement it meets instead of checking callers one by one;
--   * an agent in 'reserved' has exactly one offer; a call in 'offered' has 1..n (ring_all) offers;
--   * an offer lives in its agent's hash (fields offer = its id, call, o_exp; its queue and worker are
--     the call's offer_queue and owner) and has a lease; an agent's 'offer' field is set iff it is
--     'reserved', and then that id is leased.
--
-- Speed: a redis.call costs about as much as the command itself again (conversion, propagation to
-- the AOF), so hashes are read once into Lua tables (agent_get/call_get) and written with one HSET.
-- Each argument and reply element costs too (~0.25 us), and a Lua number passed to redis.call or
-- joined with `..` is formatted by sprintf (~1 us for a time): times are written as the caller's
-- own string (NOW_S) or formatted once, small counts as string literals, and the call hash holds
-- only what cannot be derived (score from prio+enq, skills from sig, defaults left out).

local LAYOUT = '2'       -- the key layout these scripts use (apply_rules refuses a live other one)
local SCAN = 50          -- how deep into a free-agent set one match looks for a skill fit
local RINGALL_MAX = 20   -- ring_all rings at most this many phones at once
local GRACE = 3          -- seconds a lease outlives the ring timeout before tick() reclaims it
local OFFER_SEP = '#'    -- offer id = agent id .. '#' .. the agent's offer count ('#' is not in agent ids)
local OFFER_ID = '^(.+)' .. OFFER_SEP .. '%d+$'

-- The agent an offer id names (nil for an id of another form).
local function offer_agent(oid)
  return string.match(oid or '', OFFER_ID)
end

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

-- The event bus (callcenter/events, docs/EVENTS.md): agent states and queue joins are published here,
-- by the script that makes the change, atomically with it, so no second publisher can miss or double
-- one. One XADD per change to one stream (E.stream: callcenter/events/keys.py), trimmed near EVENTS_MAX
-- entries (its STREAM_MAX); scripts.py puts both in the library.
local function publish(ev)
  ev.ts = NOW
  redis.call('XADD', E.stream(), 'MAXLEN', '~', EVENTS_MAX, '*', 'type', ev.type, 'data', cjson.encode(ev))
end

-- Two things are kept across calls in the Functions library's Lua state (upvalues live as long as
-- the library), so a decision does not re-read them from Redis:
--   * parsed queue configs (they change only through apply_rules): saves a 12-field HMGET and a
--     cjson.decode per queue per call;
--   * each queue's skill-requirement signatures (the names of its waiting_sig sets, kept in
--     sigset(q)): saves a read of them per queue an agent looks in, and the count upkeep per call.
-- Both are valid for one *epoch*: rules_ver holds '<SHA1 of the applied rules>:<epoch>', read once
-- per call (one GET), and every change of what is cached (apply_rules, pruning empty signatures)
-- writes a new epoch, so no cache can outlive the state it mirrors, in any library version or after
-- a FLUSHALL. Without the key (data from before this scheme) nothing is cached.
-- sigset(q) only grows within an epoch (tick prunes empty signatures, starting a new one), so a
-- signature a cache holds is always in Redis. Another library version (a rolling deploy) may add
-- one this cache lacks: tick() drops the signature caches every second, and its retry sweep reads
-- sigset(q) itself, so such callers wait at most about a second longer.
local QC = {}            -- this call's view: queue name -> config | false
local QCACHE = {}        -- prefix -> {ver = version, q = {queue name -> config | false},
                         --            sigs = {queue name -> {list = {sig...}, has = {sig -> true}}}}
local QVER = nil         -- this call's rules version (false: none), read once per call

local function cache_entry()
  if QVER == nil then QVER = redis.call('GET', K.rules_ver()) or false end
  if not QVER then return nil end
  local c = QCACHE[PREFIX]
  if c == nil or c.ver ~= QVER then
    c = {ver = QVER, q = {}, sigs = {}}
    QCACHE[PREFIX] = c
  end
  return c
end

local function qcache()
  local c = cache_entry()
  return c and c.q
end

-- apply_rules changed the queue hashes: forget every parsed config of this prefix.
local function qconf_reset()
  QC, QVER, QCACHE[PREFIX] = {}, nil, nil
end

-- Start a new cache epoch (keeping the rules' SHA1): every library's caches of this prefix go stale.
local function new_epoch(sha)
  local t = redis.call('TIME')
  sha = sha or string.match(redis.call('GET', K.rules_ver()) or '', '^([^:]*)') or ''
  redis.call('SET', K.rules_ver(), sha .. ':' .. t[1] .. '.' .. t[2])
  qconf_reset()
end

-- tick(): forget the cached signatures, so ones other library versions added are seen.
local function sigs_refresh()
  local c = cache_entry()
  if c then c.sigs = {} end
end

-- The signatures of queue q that may have waiting calls: {list = {...}, has = {sig -> true}}.
local function qsigs(q)
  local c = cache_entry()
  local e = c and c.sigs[q]
  if e == nil then
    e = {list = redis.call('SMEMBERS', K.sigset(q)), has = {}}
    for _, sig in ipairs(e.list) do e.has[sig] = true end
    if c then c.sigs[q] = e end
  end
  return e
end

local function qconf(q)
  if QC[q] ~= nil then return QC[q] or nil end
  local cache = qcache()
  if cache and cache[q] ~= nil then
    QC[q] = cache[q]
    return cache[q] or nil
  end
  local f = redis.call('HMGET', K.queue(q), 'strategy', 'ring_timeout', 'wrapup', 'miss_limit',
    'service_level', 'skills', 'escalation', 'max_wait', 'on_timeout', 'max_length', 'priority')
  local c = false
  if f[1] then
    c = {
      name = q, strategy = f[1], ring_timeout = num(f[2], 15), wrapup = num(f[3], 0), miss_limit = num(f[4], 3),
      service_level = num(f[5], 20), skills = cjson.decode(f[6] or '{}'),
      escalation_raw = f[7] or '[]', max_wait = num(f[8], 0),
      on_timeout_raw = f[9] or '{"action":"voicemail"}',
      max_length = num(f[10], 0), priority = num(f[11], 0),
    }
  end
  QC[q] = c
  if cache then cache[q] = c end
  return c or nil
end

-- Average handle time of a queue (talk + its wrap-up), seconds: today's calls, or the day before's
-- (`prev_day`) until today has some; 0 when neither has any.
local function aht_of(q, qc, prev_day)
  for _, day in ipairs({DAY, prev_day}) do
    local f = redis.call('HMGET', K.stats(q, day), 'talk_ms', 'handled')
    local n = num(f[2], 0)
    if n > 0 then return num(f[1], 0) / 1000 / n + qc.wrapup end
  end
  return 0
end

-- cjson.decode of agents' skills/queues, memoised by the JSON text itself (always correct; callers
-- never modify the tables). Bounded: a set_skills storm cannot grow it without limit.
local JMEMO, JMEMO_N = {}, 0
local function jdecode(raw)
  local t = JMEMO[raw]
  if t == nil then
    if JMEMO_N >= 20000 then JMEMO, JMEMO_N = {}, 0 end
    t = cjson.decode(raw)
    JMEMO[raw], JMEMO_N = t, JMEMO_N + 1
  end
  return t
end

-- t[field], made by make(arg) at its first use and kept in t: what a hash holds as text (a queue's
-- escalation steps, an agent's skills and queues, a call's queue list and requirement) is decoded
-- only by the scripts that read it, once per script.
local function lazy(t, field, make, arg)
  local v = t[field]
  if v == nil then
    v = make(arg)
    t[field] = v
  end
  return v
end

-- Escalation steps (most scripts never read them).
local function steps(qc)
  return lazy(qc, 'escalation', cjson.decode, qc.escalation_raw)
end

local STATS_TTL = 8 * 86400   -- daily counters outlive the day for late wallboard/KPI reads

-- Count one event in today's counters of queue q.
local function stat(q, field)
  if redis.call('HINCRBY', K.stats(q, DAY), field, '1') == 1 then
    redis.call('EXPIRE', K.stats(q, DAY), STATS_TTL)   -- first count of this field today
  end
end

-- Sums are kept in integer milliseconds: HINCRBYFLOAT costs twice as much and replicates as HSET.
local function stat_ms(q, field, seconds)
  redis.call('HINCRBY', K.stats(q, DAY), field, math.floor(seconds * 1000 + 0.5))
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

-- A skill requirement as a canonical string ("sales=3,vi=5"; "-" for none): calls with the same
-- signature are interchangeable for matching.
local function sig_of(need)
  local names = {}
  for skill, _ in pairs(need) do names[#names + 1] = skill end
  if #names == 0 then return '-' end
  table.sort(names)
  local parts = {}
  for i, skill in ipairs(names) do parts[i] = skill .. '=' .. math.floor(num(need[skill], 0)) end
  return table.concat(parts, ',')
end

-- The requirement of a signature. The table is shared (memo): callers must not change it.
local SIGS = {}
local function parse_sig(sig)
  if SIGS[sig] then return SIGS[sig] end
  local need = {}
  if sig ~= '-' then
    for skill, lvl in string.gmatch(sig, '([^,=]+)=(%d+)') do need[skill] = tonumber(lvl) end
  end
  SIGS[sig] = need
  return need
end

-- score: the call's queue score, formatted once by the caller (score_str)
local function add_waiting(c, q, score, sig)
  redis.call('ZADD', K.waiting(q), score, c)
  redis.call('ZADD', K.waiting_sig(q, sig), score, c)
  local e = qsigs(q)
  if not e.has[sig] then
    redis.call('SADD', K.sigset(q), sig)
    e.has[sig], e.list[#e.list + 1] = true, sig
  end
end

local function rem_waiting(c, q, sig)
  redis.call('ZREM', K.waiting(q), c)
  redis.call('ZREM', K.waiting_sig(q, sig), c)
end

-- Agents ---------------------------------------------------------------------------------------

local AGENT_FIELDS = {'state', 'skills', 'queues', 'uri', 'calls', 'talk', 'pending', 'last_free', 'offer',
  'call', 'since', 'pause_reason', 'oseq'}

local function agent_get(a)
  local f = redis.call('HMGET', K.agent(a), unpack(AGENT_FIELDS))
  if not f[3] then return nil end
  return {id = a, state = f[1] or 'logged_out', skills_raw = f[2] or '{}', queues_raw = f[3],
    uri = f[4] or '', calls = num(f[5], 0), talk = num(f[6], 0), pending = f[7], last_free = num(f[8], 0),
    offer = f[9] ~= '' and f[9] or nil, call = f[10], since = num(f[11], NOW), pause_reason = f[12],
    pending_raw = f[7], oseq = num(f[13], 0)}
end

local function ag_skills(ag)
  return lazy(ag, 'skills', jdecode, ag.skills_raw)
end

local function ag_queues(ag)
  return lazy(ag, 'queues', jdecode, ag.queues_raw)
end

-- An agent's event on the bus: its queues ride along (a supervisor sees the agents of its queues).
local function agent_event(ag, ev)
  local qs = {}
  for q, _ in pairs(ag_queues(ag)) do qs[#qs + 1] = q end
  ev.agent, ev.queues = ag.id, qs
  publish(ev)
end

local function agent_changed(ag, state, reason, call)
  agent_event(ag, {type = 'agent.state', state = state, reason = reason, since = NOW, call_id = call})
end

-- A call (again) waiting in queue q: call.queued with its place there.
local function call_queued(c, q, prio, extra)
  local ev = extra or {}
  ev.type, ev.call_id, ev.queue, ev.priority = 'call.queued', c, q, prio
  ev.position = redis.call('ZRANK', K.waiting(q), c) + 1
  publish(ev)
end

-- The free-set score of agent ag in queue q: lower is offered first.
local function agent_score(q, qc, ag, weight)
  local s = qc.strategy
  if s == 'fewest_calls' then
    return ag.calls * 1e10 + ag.last_free
  elseif s == 'least_talk_time' then
    return ag.talk
  elseif s == 'round_robin' then
    return num(redis.call('HGET', K.agent(ag.id), 'rr:' .. q), 0)
  elseif s == 'skill_weighted' then
    local have = ag_skills(ag)
    local total = 0
    for skill, _ in pairs(qc.skills) do total = total + num(have[skill], 0) end
    if next(qc.skills) == nil then total = 1 end
    return -(total * math.max(num(weight, 1), 1)) * 1e10 + ag.last_free
  end
  return ag.last_free  -- longest_idle, ring_all
end

local function leave_free_sets(ag)
  for q, _ in pairs(ag_queues(ag)) do redis.call('ZREM', K.free(q), ag.id) end
end

local function enter_free_sets(ag)
  for q, w in pairs(ag_queues(ag)) do
    local qc = qconf(q)
    if qc then redis.call('ZADD', K.free(q), agent_score(q, qc, ag, w), ag.id) end
  end
end

-- Leaving a pause (ready, logout, another pause): book its duration, cancel its auto-ready.
local function close_pause(ag)
  if ag.state == 'paused' then
    redis.call('HINCRBYFLOAT', K.pauses(ag.id), ag.pause_reason or 'other', math.max(0, NOW - ag.since))
    redis.call('ZREM', K.pause_due(), ag.id)
  end
end

-- defaults.pause_reasons: {max seconds, auto-ready?} for a reason, or nil when it has no limit.
local function pause_rule(reason)
  local r = redis.call('HGET', K.pause_rules(), reason or '')
  if not r then return nil end
  local limit, auto = string.match(r, '^([%d.]+)|(%d)$')
  return {max = num(limit, 0), auto = auto == '1'}
end

-- staffed(q): members logged in and not paused, kept on the transitions into and out of
-- paused/logged_out so an EWT is O(1) instead of a walk over the members.
local function set_staffed(ag, on)
  for q, _ in pairs(ag_queues(ag)) do
    if on then redis.call('SADD', K.staffed(q), ag.id) else redis.call('SREM', K.staffed(q), ag.id) end
  end
end

local function pause_agent(ag, reason)
  if ag.state ~= 'paused' and ag.state ~= 'logged_out' then set_staffed(ag, false) end
  close_pause(ag)
  if ag.state == 'available' then leave_free_sets(ag) end
  if ag.state == 'wrap_up' then redis.call('ZREM', K.wrapups(), ag.id) end
  redis.call('HSET', K.agent(ag.id), 'state', 'paused', 'since', NOW_S, 'pause_reason', reason)
  redis.call('HDEL', K.agent(ag.id), 'pending', 'offer', 'call')
  ag.state, ag.since, ag.pause_reason = 'paused', NOW, reason
  agent_changed(ag, 'paused', reason)
  local rule = pause_rule(reason)
  if rule and rule.auto and rule.max > 0 then redis.call('ZADD', K.pause_due(), NOW + rule.max, ag.id) end
end

local function logout_agent(ag)
  if ag.state ~= 'paused' and ag.state ~= 'logged_out' then set_staffed(ag, false) end
  close_pause(ag)
  if ag.state == 'available' then leave_free_sets(ag) end
  if ag.state == 'wrap_up' then redis.call('ZREM', K.wrapups(), ag.id) end
  redis.call('HSET', K.agent(ag.id), 'state', 'logged_out', 'since', NOW_S)
  redis.call('HDEL', K.agent(ag.id), 'pending', 'offer', 'call', 'pause_reason')
  ag.state = 'logged_out'
  agent_changed(ag, 'logged_out')
end

-- Calls ----------------------------------------------------------------------------------------

-- A call's hash: state, queue, sig (its skill requirement), prio, enq (the caller's clock string),
-- owner, caller, attrs; 'queues' (JSON) only once escalation added overflow queues, 'kind' only
-- for a callback, 'esc' only after the first escalation step, plus offers/offer_queue/agent/escq/
-- cbnum/answered as they happen.
local CALL_FIELDS = {'state', 'queues', 'owner', 'kind', 'cbnum', 'sig', 'prio', 'enq',
  'offers', 'queue', 'agent', 'offer_queue', 'esc', 'caller', 'escq'}
-- Narrower reads for the hot paths (each field read costs): a waiting call being offered (reserve),
-- and a call leaving routing (forget_call plus call_finished's queue).
local CALL_ROUTE = {'state', 'queue', 'queues', 'sig', 'owner', 'kind', 'cbnum', 'escq', 'offers'}
local CALL_END = {'state', 'queue', 'queues', 'sig', 'owner', 'cbnum', 'escq', 'offer_queue'}

-- The waiting-queue score: priority first, then arrival (lower is served first).
local function score_of(prio, enq)
  return -prio * 1e10 + enq
end

-- A score as ZADD takes it: exact (%.17g), formatted once for the several ZADDs that use it.
local function score_str(score)
  return string.format('%.17g', score)
end

-- A call's fields as a table (nil if it does not exist). `fields` (default: all) must start with
-- 'state'; prio/enq/score/esc are numbers when read. Code that requeues or escalates reads all.
local function call_get(c, fields)
  fields = fields or CALL_FIELDS
  local f = redis.call('HMGET', K.call(c), unpack(fields))
  if not f[1] then return nil end
  local ci = {id = c}
  for i, name in ipairs(fields) do ci[name] = f[i] or nil end
  ci.queues_raw, ci.queues = ci.queues, nil
  ci.kind, ci.sig = ci.kind or 'call', ci.sig or '-'
  if fields == CALL_FIELDS then
    ci.prio, ci.enq, ci.esc = num(ci.prio, 0), num(ci.enq, NOW), num(ci.esc, 1)
    ci.score = score_of(ci.prio, ci.enq)
  end
  return ci
end

-- The queues a call waits in: 'queues' (JSON) once escalation added overflow queues, else its queue.
local function queues_of(ci)
  return ci.queues_raw and cjson.decode(ci.queues_raw) or {ci.queue}
end

local function ci_queues(ci)
  return lazy(ci, 'queues', queues_of, ci)
end

-- The call's skill requirement (shared with parse_sig's memo: read-only; apply_step copies it).
local function ci_need(ci)
  return lazy(ci, 'need', parse_sig, ci.sig)
end

local function unwait(ci)
  for _, q in ipairs(ci_queues(ci)) do rem_waiting(ci.id, q, ci.sig) end
  -- 'escq' marks a call that may be in escalations: most queues have no steps and no max_wait, so
  -- most calls never are. (An entry left without the mark is harmless: escalate() skips a call
  -- that is not waiting, and requeue() re-schedules.)
  if ci.escq then redis.call('ZREM', K.escalations(), ci.id) end
end

-- Offer ci to the agents ags (one, or several for ring_all) on behalf of queue qc.
local function reserve(ci, ags, qc)
  if ci.state == 'waiting' then unwait(ci) end
  local fresh = ci.state == 'new'
  local q = qc.name
  local ids = {}
  for _, ag in ipairs(ags) do
    -- the offer lives in the agent's hash (an agent holds at most one): its id names the agent
    ag.oseq = ag.oseq + 1
    local n = tostring(ag.oseq)
    local oid = ag.id .. OFFER_SEP .. n
    local expires = tostring(NOW + qc.ring_timeout + GRACE)
    local f = {'state', 'reserved', 'since', NOW_S, 'offer', oid, 'call', ci.id, 'oseq', n, 'o_exp', expires}
    if ag.becoming_free then
      -- make_available's deferred write: it never entered the free sets, so none to leave
      f[#f + 1], f[#f + 2], f[#f + 3], f[#f + 4], f[#f + 5], f[#f + 6] =
        'last_free', NOW_S, 'calls', ag.calls, 'talk', ag.talk
    else
      leave_free_sets(ag)
    end
    if qc.strategy == 'round_robin' then
      f[#f + 1], f[#f + 2] = 'rr:' .. q, redis.call('HINCRBY', K.queue(q), 'rr', 1)
    end
    redis.call('HSET', K.agent(ag.id), unpack(f))
    ag.state, ag.offer, ag.call = 'reserved', oid, ci.id
    agent_changed(ag, 'reserved', nil, ci.id)
    redis.call('ZADD', K.leases(), expires, oid)
    local offer = {offer_id = oid, call_id = ci.id, agent_id = ag.id, agent_uri = ag.uri,
      queue = q, ring_timeout = qc.ring_timeout, kind = ci.kind}
    if ci.cbnum then offer.callback_number = ci.cbnum end
    redis.call('RPUSH', K.worker_offers(ci.owner), cjson.encode(offer))
    ids[#ids + 1] = oid
  end
  ci.state, ci.offers, ci.offer_queue = 'offered', table.concat(ids, ','), q
  -- a fresh call's hash does not exist yet: enqueue writes it once, with these fields
  if not fresh then
    redis.call('HSET', K.call(ci.id), 'state', 'offered', 'offers', ci.offers, 'offer_queue', q)
  end
  return #ids
end

-- A call looks for the best free agent in its queues (primary first, then overflow).
-- ci.state is 'waiting' (in the queues) or 'new' (enqueue's fast path: not indexed yet).
local function match_call(ci, exclude, depth)
  if ci.state ~= 'waiting' and ci.state ~= 'new' then return 0 end
  local need = ci_need(ci)
  for _, q in ipairs(ci_queues(ci)) do
    local qc = qconf(q)
    if qc then
      local chosen = {}
      local want = qc.strategy == 'ring_all' and RINGALL_MAX or 1
      local limit, start, chunk = depth or SCAN, 0, want == 1 and 4 or 8
      while start < limit and #chosen < want do
        local batch = start == 0 and chunk == 4 and redis.call('ZRANGE', K.free(q), '0', '3')
          or redis.call('ZRANGE', K.free(q), start, math.min(start + chunk, limit) - 1)
        for _, a in ipairs(batch) do
          if #chosen < want and a ~= exclude then
            local ag = agent_get(a)
            if ag == nil or ag.state ~= 'available' then
              redis.call('ZREM', K.free(q), a)  -- self-heal; should not happen
            elseif skills_ok(ag_skills(ag), need) then
              chosen[#chosen + 1] = ag
            end
          end
        end
        if #batch < chunk then break end
        start, chunk = start + chunk, chunk * 2
      end
      if #chosen > 0 then return reserve(ci, chosen, qc) end
    end
  end
  return 0
end

-- A free agent takes the best waiting call across its queues: priority, then the agent's
-- weight in that queue, then the longest wait. One ZRANGE per skill signature it meets.
local function match_agent(ag, exclude)
  if ag.state ~= 'available' then return 0 end
  local have = ag_skills(ag)
  local best = nil
  for q, w in pairs(ag_queues(ag)) do
    w = num(w, 0)
    local head, head_score = nil, nil
    for _, sig in ipairs(qsigs(q).list) do
      if skills_ok(have, parse_sig(sig)) then
        local top = redis.call('ZRANGE', K.waiting_sig(q, sig), '0', '1', 'WITHSCORES')
        local i = 1
        if top[1] == exclude then i = 3 end
        if top[i] then
          local sc = tonumber(top[i + 1])
          if head == nil or sc < head_score then head, head_score = top[i], sc end
        end
      end
    end
    if head then
      -- score = -priority * 1e10 + enqueue time
      local p = -math.floor(head_score / 1e10)
      local e = head_score + p * 1e10
      if best == nil or p > best.p or (p == best.p and (w > best.w or (w == best.w and e < best.e))) then
        best = {c = head, q = q, p = p, w = w, e = e}
      end
    end
  end
  if best == nil then return 0 end
  local ci = call_get(best.c, CALL_ROUTE)
  return reserve(ci, {ag}, qconf(best.q))
end

-- Whether the agent has a phone registered at the SIP edge: phones() is the edge's registrations as the
-- last poll saw them (routing/phones.py, phones.lua), with '' as a member whenever it is known; absent (no
-- edge polled, or the poll stopped) every agent is taken to have one, and the edge's 480 remains the check.
local function has_phone(a)
  local r = redis.call('SMISMEMBER', K.phones(), '', a)
  return r[1] == 0 or r[2] == 1
end

-- The agent looks for a waiting call before its hash is written or it enters the free sets: when it
-- takes one (the common case under load) reserve() writes the hash once and there are no free-set
-- ZADDs to undo with ZREMs. It is never in a free set on entry (free(q) iff 'available').
local function make_available(ag, exclude_call)
  if not has_phone(ag.id) then
    -- no phone at the edge: never offered; paused (no_phone) until its phone registers (phones.lua). A
    -- paused agent's pause was closed by the caller: the new one starts now
    if ag.state == 'paused' then ag.since = NOW end
    pause_agent(ag, 'no_phone')
    return 0
  end
  if ag.state == 'paused' or ag.state == 'logged_out' then set_staffed(ag, true) end
  local stale = ag.pause_reason ~= nil or ag.pending_raw ~= nil
  ag.state, ag.last_free = 'available', NOW
  ag.becoming_free = true
  local n = match_agent(ag, exclude_call)
  ag.becoming_free = nil
  if n == 0 then
    redis.call('HSET', K.agent(ag.id), 'state', 'available', 'since', NOW_S, 'last_free', NOW_S, 'calls', ag.calls,
      'talk', ag.talk)
    redis.call('HDEL', K.agent(ag.id), 'offer', 'call', 'pause_reason', 'pending')
    ag.offer, ag.call = nil, nil
    enter_free_sets(ag)
    agent_changed(ag, 'available')
  elseif stale then
    redis.call('HDEL', K.agent(ag.id), 'pause_reason', 'pending')
  end
  ag.pause_reason, ag.pending_raw = nil, nil
  return n
end

-- The agent has nothing to do: honour a pending logout/pause, else become available and match.
local function agent_free(ag, exclude_call)
  local pend = ag.pending
  ag.pending = nil
  if pend == 'logout' then
    logout_agent(ag)
  elseif pend and string.sub(pend, 1, 6) == 'pause:' then
    pause_agent(ag, string.sub(pend, 7))
  else
    make_available(ag, exclude_call)
  end
end

-- defer: the caller writes the call's 'escq' mark itself (returns true when it must).
local function schedule_escalation(ci, defer)
  local qc = qconf(ci.queue)
  if not qc then return false end
  local due = nil
  local step = nil
  if qc.escalation_raw ~= '[]' then step = steps(qc)[ci.esc] end
  if step then due = ci.enq + num(step.after, 0) end
  -- a callback has no caller on hold: max_wait (a limit on holding) does not apply to it
  if qc.max_wait > 0 and ci.kind ~= 'callback' and (due == nil or ci.enq + qc.max_wait < due) then
    due = ci.enq + qc.max_wait
  end
  if not due then return false end
  redis.call('ZADD', K.escalations(), due, ci.id)
  if ci.escq then return false end
  ci.escq = '1'
  if defer then return true end
  redis.call('HSET', K.call(ci.id), 'escq', '1')
  return false
end

-- Put a call back in every queue it waits in, at the place its score says (its original place).
local function requeue(ci)
  redis.call('HSET', K.call(ci.id), 'state', 'waiting')
  redis.call('HDEL', K.call(ci.id), 'offers', 'offer_queue', 'agent')
  ci.state, ci.offers = 'waiting', nil
  for _, q in ipairs(ci_queues(ci)) do
    if qconf(q) then
      add_waiting(ci.id, q, score_str(ci.score), ci.sig)
      call_queued(ci.id, q, ci.prio, {requeued = true})
    end
  end
  schedule_escalation(ci)
end

-- Remove every trace of a call from the routing state (its offers must be dealt with first).
local function forget_call(ci)
  if ci.state == 'waiting' then unwait(ci) end
  if ci.owner then redis.call('SREM', K.worker_calls(ci.owner), ci.id) end
  if ci.cbnum and redis.call('GET', K.callback(ci.cbnum)) == ci.id then redis.call('DEL', K.callback(ci.cbnum)) end
  redis.call('DEL', K.call(ci.id))
  ci.state = 'gone'
end

-- An offer's lease ends (answered elsewhere, failed, its call gone); its queue and worker are the
-- call's offer_queue and owner. Its fields stay in the agent's hash until the caller moves the agent
-- on (agent_free, pause, logout, or offer_failed's HDEL): until then the agent is still 'reserved'
-- with this offer, which is how callers recognise it.
local function drop_offer(oid)
  redis.call('ZREM', K.leases(), oid)
  local a = offer_agent(oid)
  if not a then return nil end
  local o = redis.call('HMGET', K.agent(a), 'offer', 'call')
  if o[1] ~= oid then return nil end
  return {id = oid, call = o[2], agent = a}
end

-- Cancel the ringing offers of a call (all but `except`); returns their agents, still 'reserved'.
local function cancel_offers(ci, reason, except)
  local freed = {}
  for _, oid in ipairs(split(ci.offers)) do
    if oid ~= except then
      local o = drop_offer(oid)
      if o then
        event(ci.owner, {kind = 'offer_cancelled', offer_id = oid, call_id = ci.id, agent_id = o.agent,
          reason = reason})
        local ag = agent_get(o.agent)
        if ag and ag.state == 'reserved' and ag.offer == oid then freed[#freed + 1] = ag end
      end
    end
  end
  redis.call('HDEL', K.call(ci.id), 'offers')
  ci.offers = nil
  return freed
end

-- Make a waiting call a callback to `number`, keeping its place. False if that number already has one.
local function to_callback(ci, number)
  local holder = redis.call('GET', K.callback(number))
  if holder and holder ~= ci.id and redis.call('EXISTS', K.call(holder)) == 1 then return false end
  redis.call('SET', K.callback(number), ci.id)
  redis.call('HSET', K.call(ci.id), 'kind', 'callback', 'cbnum', number)
  ci.kind, ci.cbnum = 'callback', number
  return true
end

-- The call leaves the queue for a fallback the owning worker carries out (voicemail, transfer,
-- hangup). A 'callback' fallback keeps the call's place as a callback to the caller's number
-- (event kept_in_queue = true): the worker says goodbye and hangs up.
local function fallback(ci, fb, reason)
  stat(ci.queue, 'fallback')
  local ev = {kind = 'fallback', call_id = ci.id, queue = ci.queue, action = fb.action, target = fb.target,
    reason = reason, call_kind = ci.kind, kept_in_queue = false}
  if fb.action == 'callback' and ci.kind ~= 'callback' and ci.caller and ci.caller ~= ''
      and to_callback(ci, ci.caller) then
    ev.kept_in_queue = true
  end
  if ci.cbnum then ev.callback_number = ci.cbnum end
  event(ci.owner, ev)
  if not ev.kept_in_queue then forget_call(ci) end
  return ev.kept_in_queue
end

-- Apply one escalation step that only changes how the call is matched (skills, queues, priority).
local function apply_step(ci, step)
  local need, queues = {}, ci_queues(ci)
  for skill, lvl in pairs(ci_need(ci)) do need[skill] = lvl end   -- ci_need's table is shared
  ci.need = need
  if step.relax_skills then
    for skill, lvl in pairs(step.relax_skills) do
      if need[skill] and num(need[skill], 0) > num(lvl, 0) then need[skill] = num(lvl, 0) end
    end
  end
  local by = num(step.relax_by, 0)
  if by > 0 then
    for skill, lvl in pairs(need) do need[skill] = math.max(1, num(lvl, 1) - by) end
  end
  if num(step.raise_priority, 0) > 0 then
    ci.prio = ci.prio + num(step.raise_priority, 0)
    ci.score = score_of(ci.prio, ci.enq)
  end
  local joined = {}
  for _, oq in ipairs(step.overflow or {}) do
    local present = false
    for _, q in ipairs(queues) do if q == oq then present = true end end
    if not present and qconf(oq) then queues[#queues + 1], joined[#joined + 1] = oq, oq end
  end
  -- re-index under the new signature/score (ZADD of a present member just moves it)
  local new_sig = sig_of(need)
  local score = score_str(ci.score)
  for _, q in ipairs(queues) do
    if new_sig ~= ci.sig then rem_waiting(ci.id, q, ci.sig) end
    add_waiting(ci.id, q, score, new_sig)
  end
  ci.sig = new_sig
  redis.call('HSET', K.call(ci.id), 'prio', ci.prio, 'queues', cjson.encode(queues), 'sig', ci.sig)
  for _, q in ipairs(joined) do call_queued(ci.id, q, ci.prio, {overflow_from = ci.queue}) end
end

-- A due escalation check for a call: apply every step whose time has come, in order.
local function escalate(c)
  redis.call('ZREM', K.escalations(), c)
  local ci = call_get(c)
  if ci == nil or ci.state ~= 'waiting' then return end  -- requeue() reschedules when an offer fails
  local qc = qconf(ci.queue)
  if not qc then return end
  local changed = false
  while true do
    local step = steps(qc)[ci.esc]
    local step_due = step and ci.enq + num(step.after, 0) or nil
    local timeout_due = nil
    if qc.max_wait > 0 and ci.kind ~= 'callback' then timeout_due = ci.enq + qc.max_wait end
    if timeout_due and timeout_due <= NOW and (step_due == nil or timeout_due < step_due) then
      if not fallback(ci, cjson.decode(qc.on_timeout_raw), 'max_wait') then return end
    else
      if step_due == nil or step_due > NOW then break end
      if step.fallback and step.fallback ~= cjson.null then
        -- a call that is already a callback has nothing to fall back to: the step is skipped
        if ci.kind ~= 'callback' and not fallback(ci, step.fallback, 'escalation') then return end
      else
        apply_step(ci, step)
        changed = true
      end
      event(ci.owner, {kind = 'escalated', call_id = c, step = ci.esc})
      ci.esc = ci.esc + 1
      redis.call('HSET', K.call(c), 'esc', ci.esc)
    end
  end
  schedule_escalation(ci)
  if changed then match_call(ci) end
end

-- An offer did not turn into a conversation: the call goes back to its place, the agent gets a miss
-- (count_miss) and is paused after miss_limit misses in a row.
local function offer_failed(oid, reason, count_miss)
  local o = drop_offer(oid)
  if not o then return 0 end
  local ci = call_get(o.call)
  local q = ci and ci.offer_queue
  local qc = q and qconf(q) or {miss_limit = 3}
  local ag = agent_get(o.agent)
  if ag and ag.offer == oid then
    redis.call('HDEL', K.agent(ag.id), 'offer', 'call')
    if reason == 'unregistered' and not ag.pending then
      ag.pending = 'pause:no_phone'       -- agent_free below: out of the ACD, shown as paused (no phone)
    end
    if count_miss then
      if q then stat(q, 'missed') end
      local misses = redis.call('HINCRBY', K.agent(ag.id), 'misses', '1')
      if misses >= qc.miss_limit then
        pause_agent(ag, 'missed_offers')
        event(ci and ci.owner, {kind = 'agent_auto_paused', agent_id = ag.id, misses = misses})
      end
    end
  end
  if ci and ci.state == 'offered' then
    local rest = {}
    for _, x in ipairs(split(ci.offers)) do if x ~= oid then rest[#rest + 1] = x end end
    if #rest == 0 then
      requeue(ci)
      match_call(ci, o.agent)
    else
      redis.call('HSET', K.call(ci.id), 'offers', table.concat(rest, ','))
    end
  end
  if ag and ag.state == 'reserved' and ag.offer == oid then agent_free(ag, o.call) end
  return 1
end

-- A worker is gone (dead: no heartbeat; or `w == me`: this process took over its worker id after a
-- crash). Its callers' media died with it: close those calls out (for CDRs, `closed[id] = direction`)
-- and free their agents. Callbacks need no media, so `me` adopts them instead. The calls whose CDR it
-- held open (K.worker_open: IVR callers not queued, dials; calls.records.call_record) are closed too.
local function reap_worker(w, me, closed)
  local adopt, close = {}, {}
  local calls = redis.call('SMEMBERS', K.worker_calls(w))
  -- its offer and event lists are for calls no process holds any more
  redis.call('DEL', K.worker_calls(w), K.worker_offers(w), K.worker_events(w))
  for _, c in ipairs(calls) do
    local ci = call_get(c)
    if ci then
      if ci.kind == 'callback' and ci.state ~= 'connected' then
        adopt[#adopt + 1] = ci
      else
        -- out of every queue first, so agents freed below cannot be matched to a dying call
        if ci.state == 'waiting' then unwait(ci) end
        ci.state = 'closing'
        redis.call('HSET', K.call(c), 'state', 'closing')
        close[#close + 1] = ci
      end
    end
  end
  for _, ci in ipairs(adopt) do
    redis.call('HSET', K.call(ci.id), 'owner', me)
    redis.call('SADD', K.worker_calls(me), ci.id)
    ci.owner = me
    if ci.state == 'offered' then
      local freed = cancel_offers(ci, 'worker_died')
      requeue(ci)
      match_call(ci)   -- before the freed agents look for work, so `ci` here stays current
      for _, ag in ipairs(freed) do agent_free(ag) end
    end
  end
  for _, ci in ipairs(close) do
    local freed = {}
    for _, oid in ipairs(split(ci.offers)) do
      local o = drop_offer(oid)
      if o then freed[#freed + 1] = o.agent end
    end
    if ci.agent then freed[#freed + 1] = ci.agent end
    forget_call(ci)
    redis.call('XADD', K.closed_calls(), 'MAXLEN', '~', 100000, '*', 'call_id', ci.id, 'worker', w,
      'queue', ci.queue or '', 'reason', 'worker_died', 'at', NOW_S)
    publish({type = 'call.ended', call_id = ci.id, queue = ci.offer_queue or ci.queue, agent = ci.agent,
      cause = 'worker_died'})
    closed[ci.id] = ci.kind == 'callback' and 'outbound' or 'inbound'
    for _, a in ipairs(freed) do
      local ag = agent_get(a)
      if ag and (ag.state == 'reserved' or ag.state == 'on_call') and ag.call == ci.id then agent_free(ag) end
    end
  end
  local open = redis.call('HGETALL', K.worker_open(w))
  for i = 1, #open, 2 do closed[open[i]] = open[i + 1] end
  redis.call('DEL', K.worker_open(w))
  if w ~= me then redis.call('ZREM', K.workers(), w) end
end
