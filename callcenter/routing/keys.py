"""Every Redis key of the routing concept.

The Lua scripts find agents and calls while they run (matching cannot name them up front), so
they build keys too. They do it with functions generated from :data:`TEMPLATES` by
``scripts.py`` — this table is the one place the key scheme is written down.
"""

from __future__ import annotations

# name -> (template relative to the deployment prefix, Redis type, what it holds)
TEMPLATES: dict[str, tuple[str, str, str]] = {
    "queues": ("rt:queues", "set", "names of configured queues"),
    "queue": ("rt:q:{q}", "hash", "queue config (from routing_rules.yaml) and running AHT"),
    "waiting": ("rt:q:{q}:waiting", "zset", "waiting calls; score = -priority*1e10 + enqueue time"),
    "waiting_sig": ("rt:q:{q}:w:{sig}", "zset", "the waiting calls of one skill requirement (match index)"),
    "sigset": ("rt:q:{q}:sigset", "set", "skill requirement signatures that have a waiting_sig set "
                                         "(grows; tick prunes empty ones and starts a new cache epoch)"),
    "free": ("rt:q:{q}:free", "zset", "available member agents; score = the queue strategy's key"),
    "members": ("rt:q:{q}:members", "set", "agents that are members of the queue"),
    "staffed": ("rt:q:{q}:staffed", "set", "members logged in and not paused (EWT divides by this)"),
    "stats": ("rt:q:{q}:stats:{day}", "hash", "today's counters: offered, answered, abandoned, ..."),
    "agents": ("rt:agents", "set", "configured agent ids"),
    "agent": ("rt:a:{a}", "hash", "agent config and live state, and its one offer while reserved "
                                  "(offer id '<agent>#<n>', call, o_exp)"),
    "pauses": ("rt:a:{a}:pauses", "hash", "pause reason -> total seconds paused"),
    "call": ("rt:c:{c}", "hash", "a queued call"),
    "leases": ("rt:leases", "zset", "offer id -> lease expiry"),
    "escalations": ("rt:esc", "zset", "call id -> time its next escalation step is due"),
    "wrapups": ("rt:wrap", "zset", "agent id -> end of wrap-up"),
    "workers": ("rt:workers", "zset", "worker id -> last heartbeat"),
    "worker_calls": ("rt:w:{w}:calls", "set", "calls whose media the worker holds"),
    "worker_claim": ("rt:w:{w}:claim", "string", "token of the live process using this worker id (expires "
                                               "dead_after s after its last heartbeat)"),
    "worker_offers": ("rt:w:{w}:offers", "list", "offers for the worker to ring (JSON)"),
    "worker_events": ("rt:w:{w}:events", "list", "routing events for the worker (JSON)"),
    "callback": ("rt:cb:{n}", "string", "call id holding a callback for number n"),
    "closed_calls": ("rt:closed_calls", "stream", "calls closed out because their worker died"),
    "retry_guard": ("rt:retry_guard", "string", "script time of the last matching-retry sweep (one per second)"),
    "rules": ("rt:rules", "string", "the rules last applied (JSON), for GET /admin/rules"),
    "pause_rules": ("rt:pause_rules", "hash", "pause reason -> 'max seconds|1 if auto-ready' (defaults.pause_reasons)"),
    "pause_due": ("rt:pause_due", "zset", "agent id -> when its auto-ready pause ends"),
    "libs": ("rt:libs", "zset", "routing Functions library name -> last heartbeat of a process using it"),
    "rules_ver": ("rt:rules_ver", "string", "'<SHA1 of the rules last applied>:<cache epoch>' (Lua caches' version)"),
    "layout": ("rt:layout", "string", "version of this key layout (absent: layout 1, before offers moved into agents)"),
    "sig_prune": ("rt:sig_prune", "string", "time of the last pruning of empty signatures (one per minute)"),
}


class Keys:
    """Key builder bound to one deployment prefix (default ``cc:``)."""

    def __init__(self, prefix: str = "cc:") -> None:
        self.prefix = prefix

    def _k(self, name: str, **parts: str) -> str:
        return self.prefix + TEMPLATES[name][0].format(**parts)

    def queues(self) -> str:
        return self._k("queues")

    def queue(self, q: str) -> str:
        return self._k("queue", q=q)

    def waiting(self, q: str) -> str:
        return self._k("waiting", q=q)

    def waiting_sig(self, q: str, sig: str) -> str:
        return self._k("waiting_sig", q=q, sig=sig)

    def sigset(self, q: str) -> str:
        return self._k("sigset", q=q)

    def free(self, q: str) -> str:
        return self._k("free", q=q)

    def members(self, q: str) -> str:
        return self._k("members", q=q)

    def staffed(self, q: str) -> str:
        return self._k("staffed", q=q)

    def stats(self, q: str, day: str) -> str:
        return self._k("stats", q=q, day=day)

    def agents(self) -> str:
        return self._k("agents")

    def agent(self, a: str) -> str:
        return self._k("agent", a=a)

    def pauses(self, a: str) -> str:
        return self._k("pauses", a=a)

    def call(self, c: str) -> str:
        return self._k("call", c=c)

    def leases(self) -> str:
        return self._k("leases")

    def escalations(self) -> str:
        return self._k("escalations")

    def wrapups(self) -> str:
        return self._k("wrapups")

    def workers(self) -> str:
        return self._k("workers")

    def worker_calls(self, w: str) -> str:
        return self._k("worker_calls", w=w)

    def worker_claim(self, w: str) -> str:
        return self._k("worker_claim", w=w)

    def worker_offers(self, w: str) -> str:
        return self._k("worker_offers", w=w)

    def worker_events(self, w: str) -> str:
        return self._k("worker_events", w=w)

    def callback(self, n: str) -> str:
        return self._k("callback", n=n)

    def closed_calls(self) -> str:
        return self._k("closed_calls")

    def retry_guard(self) -> str:
        return self._k("retry_guard")

    def rules(self) -> str:
        return self._k("rules")

    def pause_rules(self) -> str:
        return self._k("pause_rules")

    def pause_due(self) -> str:
        return self._k("pause_due")

    def libs(self) -> str:
        return self._k("libs")

    def rules_ver(self) -> str:
        return self._k("rules_ver")

    def layout(self) -> str:
        return self._k("layout")

    def sig_prune(self) -> str:
        return self._k("sig_prune")


def lua_builders() -> str:
    """Lua source defining ``K.<name>(...)`` for every template; the prefix is ``PREFIX``."""
    out = ["local K = {}"]
    for name, (tpl, _, _) in TEMPLATES.items():
        params: list[str] = []
        pieces: list[str] = []
        rest = tpl
        while "{" in rest:
            head, _, tail = rest.partition("{")
            param, _, rest = tail.partition("}")
            if head:
                pieces.append(repr(head).replace("'", '"'))
            pieces.append(param)
            params.append(param)
        if rest:
            pieces.append(repr(rest).replace("'", '"'))
        body = " .. ".join(["PREFIX"] + pieces)
        out.append(f"K.{name} = function({', '.join(params)}) return {body} end")
    return "\n".join(out) + "\n"
