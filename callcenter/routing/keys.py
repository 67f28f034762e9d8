"""Every Redis key of the routing concept.

The Lua scripts find agents and calls while they run (matching cannot name them up front), so
they build keys too. They do it with functions generated from this table (``keyspace.lua_builders``) by
``scripts.py`` — it is the one place the key scheme is written down.
"""

from __future__ import annotations

from callcenter.keyspace import KeySpace, key0, key1, key2


class Keys(KeySpace):
    """The routing keys under one deployment prefix (default ``cc:``).

    The Lua scripts build the same keys with ``K.<name>(...)`` (``keyspace.lua_builders``).
    """

    queues = key0("rt:queues", "set", "names of configured queues")
    queue = key1("rt:q:{q}", "hash", "queue config (from routing_rules.yaml) and running AHT")
    waiting = key1("rt:q:{q}:waiting", "zset", "waiting calls; score = -priority*1e10 + enqueue time")
    waiting_sig = key2("rt:q:{q}:w:{sig}", "zset", "the waiting calls of one skill requirement (match index)")
    # grows; the tick prunes empty ones and starts a new cache epoch
    sigset = key1("rt:q:{q}:sigset", "set", "skill requirement signatures that have a waiting_sig set")
    free = key1("rt:q:{q}:free", "zset", "available member agents; score = the queue strategy's key")
    members = key1("rt:q:{q}:members", "set", "agents that are members of the queue")
    staffed = key1("rt:q:{q}:staffed", "set", "members logged in and not paused (EWT divides by this)")
    stats = key2("rt:q:{q}:stats:{day}", "hash", "today's counters: offered, answered, abandoned, ...")
    agents = key0("rt:agents", "set", "configured agent ids")
    # the offer: id '<agent>#<n>', call, o_exp
    agent = key1("rt:a:{a}", "hash", "agent config and live state, and its one offer while reserved")
    pauses = key1("rt:a:{a}:pauses", "hash", "pause reason -> total seconds paused")
    call = key1("rt:c:{c}", "hash", "a queued call")
    leases = key0("rt:leases", "zset", "offer id -> lease expiry")
    escalations = key0("rt:esc", "zset", "call id -> time its next escalation step is due")
    wrapups = key0("rt:wrap", "zset", "agent id -> end of wrap-up")
    workers = key0("rt:workers", "zset", "worker id -> last heartbeat")
    worker_calls = key1("rt:w:{w}:calls", "set", "calls whose media the worker holds")
    worker_open = key1("rt:w:{w}:open", "hash", "call id -> direction of each call whose CDR the worker holds open")
    # expires dead_after seconds after its last heartbeat
    worker_claim = key1("rt:w:{w}:claim", "string", "token of the live process using this worker id")
    worker_offers = key1("rt:w:{w}:offers", "list", "offers for the worker to ring (JSON)")
    worker_events = key1("rt:w:{w}:events", "list", "routing events for the worker (JSON)")
    callback = key1("rt:cb:{n}", "string", "call id holding a callback for number n")
    closed_calls = key0("rt:closed_calls", "stream", "calls closed out because their worker died")
    retry_guard = key0("rt:retry_guard", "string", "script time of the last matching-retry sweep (1/s)")
    phones_guard = key0("rt:phones_guard", "string", "held by the worker polling the edge this period")
    # expires unless the edge is polled again (routing/phones.py); absent: every agent is taken to have a phone
    phones = key0("rt:phones", "set", "agents with a phone registered at the SIP edge, and '' (the set is known)")
    rules = key0("rt:rules", "string", "the rules last applied (JSON), for GET /admin/rules")
    # from defaults.pause_reasons
    pause_rules = key0("rt:pause_rules", "hash", "pause reason -> 'max seconds|1 if auto-ready'")
    pause_due = key0("rt:pause_due", "zset", "agent id -> when its auto-ready pause ends")
    libs = key0("rt:libs", "zset", "routing Functions library name -> last heartbeat of a process using it")
    # the version the Lua caches check
    rules_ver = key0("rt:rules_ver", "string", "'<SHA1 of the rules last applied>:<cache epoch>'")
    # absent: layout 1, before offers moved into agents
    layout = key0("rt:layout", "string", "version of this key layout")
    sig_prune = key0("rt:sig_prune", "string", "time of the last pruning of empty signatures (1/minute)")
