"""Issue 16's must-show: a Redis Sentinel failover with callers waiting and an agent reserved. A real worker
on a real master + replica + 3 sentinels (tests/sentinel_helpers.py), sipp callers in a queue, an agent's
phone ringing; then ``SENTINEL FAILOVER`` (or a SIGKILL of the master). Afterwards every waiting caller is
still queued, in order, on the new master; the next free agent gets the longest waiting one; every caller is
served once, has one CDR (the CDR writer's consumer group survived), and no agent is left reserved."""

from __future__ import annotations

import asyncio
from pathlib import Path

import ports
import pytest
import sipp
from sentinel_helpers import SentinelSite, wait_for
from worker_proc import WorkerProc, flow_worker, queue_flow

from callcenter.cdr import keys as cdr_keys
from callcenter.cdr.writer import open_store
from callcenter.redisconn import connect
from callcenter.routing import scripts
from callcenter.routing.keys import Keys
from callcenter.routing.router import Router

pytestmark = [pytest.mark.sip, pytest.mark.timeout(300)]

FLOW = queue_flow("hafail", "sales", "moh", max_wait="300", announce="{position: false, wait_time: false}")
CALLERS = ["0902000001", "0902000002", "0902000003", "0902000004"]   # A rings agent 1001; B, C, D wait
K = Keys("cc:")


def _router_view(url: str, call_ids: list[str]) -> tuple[list[int | None], dict[str, str]]:
    """(each call's place in the queue, every agent's state) as the master the sentinels name has them."""
    async def go() -> tuple[list[int | None], dict[str, str]]:
        r = connect(url)
        try:
            rt = Router(r, "test")
            return ([await rt.position(c) for c in call_ids],
                    {a["id"]: a["state"] for a in await rt.agents()})
        finally:
            await r.aclose()
    return asyncio.run(go())


def _call_id(w: WorkerProc, number: str) -> str | None:
    """The call id of the live call from ``number`` (the CDR buffer's snapshot of it in the store)."""
    try:
        store = open_store(w.store_url)
    except Exception:  # noqa: BLE001 - not created yet
        return None
    try:
        rows = [c for c in store.calls() if c.caller == number]
    finally:
        store.close()
    return rows[-1].call_id if rows else None


@pytest.mark.parametrize("fault", ["sentinel_failover", "sigkill_master"])
def test_failover_keeps_the_queue_in_order_and_frees_every_agent(tmp_path: Path, fault: str) -> None:
    site = SentinelSite(tmp_path / "redis", ports.block(5)).start()
    phones: list[sipp.Sipp] = []
    callers: list[sipp.Sipp] = []
    w: WorkerProc | None = None
    try:
        url = site.url()
        w = flow_worker(tmp_path, url, {"hafail": FLOW}, "hafail")
        w.start()
        # Every demo agent's phone is this one sipp: it rings 3 s, answers, talks 5 s and hangs up.
        phones.append(sipp.agent(w.agents_port, "answer_bye", ring_ms=3000, talk_ms=5000, calls=len(CALLERS),
                                 timeout_s=240))
        ids: list[str] = []
        for i, number in enumerate(CALLERS):      # nobody logged in: A, B, C, D wait, in the order they came
            callers.append(sipp.caller(w.target, [("wait_bye", 200_000)], number=number, timeout_s=240))
            ids.append(wait_for(f"caller {number} in the store", lambda n=number: _call_id(w, n)))
            wait_for(f"{number} queued", lambda n=i: _router_view(url, ids)[0] == list(range(1, n + 2)))
        w.login("1001")       # A is offered to 1001: reserved, its phone ringing
        wait_for("1001 reserved", lambda: _router_view(url, [])[1]["1001"] == "reserved")
        site.wait_replicated()

        old = site.master_port()
        if fault == "sentinel_failover":
            new = site.failover(whole=False)
        else:
            new = site.kill_master(restart=False)
        assert new != old

        # On the new master, read directly: B, C, D still queued in order, the routing library and the
        # layout there, the CDR stream's consumer group kept.
        master = site.master().client()
        waiting = master.zrange(K.waiting("sales"), 0, -1)
        assert [c for c in waiting if c in ids] == ids[1:], waiting
        assert master.function_list(library=scripts.library()[0]), "the routing library is not on the new master"
        assert master.get(K.layout()) is not None
        assert master.xinfo_groups(cdr_keys.stream("cc:")), "the CDR writer's consumer group is gone"

        # The next free agent gets the longest waiting caller: 1002 logs in now and takes B (or 1001, if its
        # call with A ended first, does); then C, then D.
        w.login("1002")
        assert sipp.wait_all(*callers, *phones, timeout=200) == [0] * (len(callers) + len(phones)), \
            "\n".join(p.errors() for p in [*callers, *phones]) + w.tail()

        rows = {c.caller: c for c in w.calls(wait_for=len(CALLERS), timeout=60)}
        assert sorted(rows) == CALLERS     # one CDR per caller
        store = open_store(w.store_url)
        try:
            first_offer = {c: min(e.ts for e in store.events(c, kinds=["OFFER"])) for c in ids}
            served = {c: rows[n].agent_id for c, n in zip(ids, CALLERS, strict=True)}
        finally:
            store.close()
        assert sorted(ids, key=first_offer.__getitem__) == ids, first_offer   # offered in queue order
        assert all(served.values()), served
        places, states = _router_view(url, ids)
        assert places == [None] * len(ids)
        assert "reserved" not in states.values() and "on_call" not in states.values(), states
        assert site.master().client().zcard(K.leases()) == 0
        for node in site.stopped():   # the killed master comes back as the new one's replica
            site.restart(node)
    finally:
        for p in [*callers, *phones]:
            p.stop()
        if w is not None:
            w.stop()
        site.stop()
