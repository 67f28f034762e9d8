"""Issue 16: nothing lost in a planned Redis failover. A real worker on a real master + replica + 3 sentinels
(tests/sentinel_helpers.py) answers sipp callers, plays each a short goodbye and hangs up, 5 new calls a
second, while ``SENTINEL FAILOVER`` runs: calls start and end during the ~1 s in which the old master still
takes writes after the replica's promotion. The worker's CDR writer is off, so what counts is what the NEW
master's stream holds: a CDR writer started afterwards finds every call there, each exactly once and closed
(the CDR buffer's appends wait for the replica, and a batch the old master took alone goes again to the new
one: callcenter.redisconn.durable_all)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ports
import pytest
import sipp
from sentinel_helpers import SentinelSite, wait_for
from worker_proc import flow_worker

from callcenter.cdr.writer import open_store

pytestmark = [pytest.mark.sip, pytest.mark.timeout(240)]

FLOW = """name: goodbye
languages: [vi]
default_language: vi
start: bye
nodes:
  bye:
    type: hangup
    prompts: [system/goodbye]
"""
CALLS = 30
RATE = 5
PREFIX = "0981"          # + sipp's call number: each caller's own number


def test_calls_ending_through_a_planned_failover_have_one_closed_cdr_each(tmp_path: Path) -> None:
    site = SentinelSite(tmp_path / "redis", ports.block(5)).start()
    callers: sipp.Sipp | None = None
    writer: subprocess.Popen[bytes] | None = None
    w = flow_worker(tmp_path, site.url(), {"goodbye": FLOW}, "goodbye")
    try:
        w.config.write_text(w.config.read_text().replace("writer: true", "writer: false"))
        w.start()
        callers = sipp.caller(w.target, [("wait_bye", 20_000)], number=PREFIX + "[call_number]", calls=CALLS,
                              rate=RATE, timeout_s=120)
        # the failover once calls are coming and ending (each lasts the 3.2 s goodbye): well inside the 6 s
        wait_for("calls answered", lambda: w.log.read_text(errors="replace").count('"incoming call"') >= 12)
        old = site.master_port()
        assert site.failover(whole=False) != old
        assert callers.wait(120) == 0, callers.errors() + w.tail()

        out = open(tmp_path / "cdr-writer.log", "ab")  # noqa: SIM115 - owned by the process
        writer = subprocess.Popen([sys.executable, "-m", "callcenter", "cdr-writer", "--redis", site.url(),
                                   "--store", w.store_url, "--consumer", "after-failover"],
                                  stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
        w.calls(wait_for=CALLS, timeout=60, where=lambda c: c.caller.startswith(PREFIX))   # every one closed
        store = open_store(w.store_url)
        try:
            rows = [c for c in store.calls() if c.caller.startswith(PREFIX)]
        finally:
            store.close()
        assert len(rows) == len({c.caller for c in rows}) == CALLS, sorted(c.caller for c in rows)
        assert all(c.end and c.outcome for c in rows), [(c.caller, c.end, c.outcome) for c in rows]
    finally:
        if writer is not None:
            writer.terminate()
            writer.wait(10)
        if callers is not None:
            callers.stop()
        w.stop()
        site.stop()
