"""A call slot freed by one call and taken by the next INVITE in the same pump (bench/RESULTS.md, the
1.5x overload run: "A new caller killed by an old call's destructor").

pjsua2's ``Call`` destructor clears the user data of its call *slot* and hangs up whatever call is
active there. The softswitch once dropped a finished call's ``pj.Call`` one loop turn after its
DISCONNECTED callback; near ``sip.max_calls`` pjsua hands the freed slot to the next INVITE within the
same ``libHandleEvents``, so the late destructor answered that new caller 603 and cut its leg off from
every callback. Here every call slot of the worker is taken (4), and the old callers' BYEs and the new
callers' INVITEs wait in the worker's socket together (the process is stopped meanwhile), so that pumps
take a BYE and the INVITE that gets its slot together.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import sipp
from repo import REPO
from worker_proc import new_worker

FLOWS = REPO / "bench" / "flows"
SLOTS = 4


@pytest.mark.sip
def test_a_slot_freed_and_taken_in_one_pump_keeps_the_new_call(tmp_path: Path, redis_url: str) -> None:
    w = new_worker(tmp_path, redis_url)
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "bench_ivr.yaml").write_text((FLOWS / "bench_ivr.yaml").read_text())
    w.write_config(ivr_scripts=flows, routes={"default": "bench_ivr"},
                   extra="capacity: {loop_lag_seconds: 10, loop_cpu: 0, reserve_calls: 0}")
    w.config.write_text(w.config.read_text().replace("max_calls: 1000", f"max_calls: {SLOTS}"))
    w.start()
    assert w.proc is not None
    try:
        old = sipp.caller(w.target, [("pause", 3000), ("hangup",)], number="0903000011", service="bench",
                          calls=SLOTS, rate=50)
        deadline = time.monotonic() + 20
        while sum(e.get("event") == "incoming call" for e in w.logs()) < SLOTS:
            assert time.monotonic() < deadline, w.tail()
            time.sleep(0.1)
        time.sleep(1.0)     # answered; their BYEs come ~2 s from now
        w.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(4.0)     # the old callers' BYEs (and their retransmissions) wait in the socket
            new = sipp.caller(w.target, [("pause", 1500), ("hangup",)], number="0903000012", service="bench",
                              calls=SLOTS, rate=50)
            time.sleep(1.0)     # and the new callers' INVITEs behind them
        finally:
            w.proc.send_signal(signal.SIGCONT)
        assert old.wait(30) == 0, old.errors()
        assert new.wait(30) == 0, new.errors()     # answered 200 and hung up by themselves: no 603
        # sipp is done once it has the 200 to its BYE; the worker logs the end a moment later (a loaded box).
        deadline = time.monotonic() + 10
        while (len(ended := [e for e in w.logs() if e.get("event") == "call ended"]) < 2 * SLOTS
               and time.monotonic() < deadline):
            time.sleep(0.1)
        assert len(ended) == 2 * SLOTS and all(e.get("side") == "caller" for e in ended), ended
    finally:
        w.stop()
