"""The outbound dialer in a real worker process against sipp customers: the worker, its campaigns
written from a few parameters, the campaign CLI, and what the dialer left in Redis and the CDR store."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import ports
import sipp
from repo import REPO
from worker_proc import WorkerProc, new_worker

from callcenter.dialer.keys import DialerKeys
from callcenter.redisconn import connect_sync

KEYS = DialerKeys("cc:")

SHORT_FLOW = """name: dialer_test_notice
description: short outbound notice for tests
languages: [vi]
default_language: vi
start: notice
nodes:
  notice:
    type: event
    name: already_paid
    data: {amount: "{amount_due}"}
    prompts: [debt/paid_thanks]
    next: bye
  bye:
    type: hangup
"""


def free_ports(n: int) -> list[int]:
    """Ports for sipp customers' and agents' phones (tests/ports.py)."""
    return [ports.port() for _ in range(n)]


def window_now() -> tuple[str, str]:
    """A calling window around the current Ho Chi Minh City time, and a time zone (UTC-5, 12 h
    away) where that window is closed right now."""
    h = dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).hour
    return f"{max(0, h - 2):02d}:00-{min(24, h + 2):02d}:00", "Etc/GMT+5"


def campaign_yaml(cid: str, port: int, *, ctype: str = "debt_reminder", mode: str = "agentless",
                  queue: str | None = None, amd: bool = False, retry: str = "{busy: 2s}",
                  max_attempts: int = 2, ring: str = "3s") -> str:
    window, _ = window_now()
    target = "ivr_flow: dialer_test_notice" if mode == "agentless" else f"queue: {queue}"
    return f"""id: {cid}
type: {ctype}
dial_mode: {mode}
{target}
caller_id: "02873005678"
dial_uri: "sip:{{national}}@127.0.0.1:{port}"
time_zone: Asia/Ho_Chi_Minh
compliance:
  calling_hours: ["{window}"]
  max_calls_per_number: 0
attempts:
  max_attempts: {max_attempts}
  retry: {retry}
pacing:
  ring_timeout: {ring}
  max_concurrent: 2
amd:
  enabled: {str(amd).lower()}
list_columns: [name, amount_due, timezone]
"""


def cli(*args: str, redis_url: str, campaigns: Path) -> str:
    r = subprocess.run([sys.executable, "-m", "callcenter", "campaign", *args, "--redis", redis_url,
                        "--campaigns", str(campaigns)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def upload(tmp: Path, cid: str, rows: list[str], redis_url: str, campaigns: Path) -> None:
    f = tmp / f"{cid}.csv"
    f.write_text("phone,name,amount_due,timezone\n" + "\n".join(rows) + "\n")
    cli("upload", str(f), "--campaign", cid, redis_url=redis_url, campaigns=campaigns)


def contact(redis_url: str, cid: str, e164: str) -> dict[str, str]:
    c = connect_sync(redis_url)
    try:
        return c.hgetall(KEYS.contact(cid, e164))
    finally:
        c.close()


def stats(redis_url: str, cid: str) -> dict[str, str]:
    c = connect_sync(redis_url)
    try:
        return c.hgetall(KEYS.stats(cid))
    finally:
        c.close()


def wait_until(cond, timeout: float, what: str, w: WorkerProc) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{w.tail(40)}")


def outbound_rows(w: WorkerProc, n: int, timeout: float = 20.0) -> list:
    deadline = time.monotonic() + timeout
    rows: list = []
    while time.monotonic() < deadline:
        rows = [r for r in w.calls(wait_for=0, timeout=1) if r.direction == "outbound"]
        if len(rows) >= n:
            return rows
        time.sleep(0.3)
    raise AssertionError(f"{len(rows)} outbound CDRs, expected {n}:\n{w.tail(40)}")


def machine_customer(port: int) -> sipp.Sipp:
    """A voicemail box: answers, then talks for 4.7 s (a long greeting), then waits for BYE.
    Its answer offers PCMA only (the greeting's pcap is PT 8) so the worker decodes what it sends."""
    return sipp.agent(port, "answer", ring_ms=200, talk_ms=0, timeout_s=60, codecs="8", greeting=True)


def dialer_worker(tmp: Path, redis_url: str) -> tuple[WorkerProc, Path, Path]:
    """A worker that runs the dialer (not started yet), its IVR scripts (the shipped ones and
    SHORT_FLOW) and its campaigns directory (empty: each test writes its campaigns)."""
    ivr = tmp / "ivr"
    shutil.copytree(REPO / "ivr_scripts", ivr)
    (ivr / "dialer_test_notice.yaml").write_text(SHORT_FLOW)
    campaigns = tmp / "campaigns"
    campaigns.mkdir()
    w = new_worker(tmp, redis_url)
    w.env["CALLCENTER_DIALER"] = "1"
    return w, ivr, campaigns
