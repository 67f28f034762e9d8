"""Privacy on a real worker: a caller with a known number types a PIN into a sensitive collect and
leaves a voice message; a broken INVITE makes pjsip log a whole packet; API requests carry full numbers in their paths (one of them fails with a
traceback); a CSV list with numbers is uploaded. Then the worker's whole log file holds no full
number (national, E.164 or without the trunk 0) and no PIN, while the masked tails are there; the
CDR row and queue log hold no PIN; the files the worker made are 0640 and its directories 0750."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import stat
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sipp
from repo import REPO
from worker_proc import WorkerProc, admin_token, flush, new_worker

from callcenter.cdr.writer import open_store
from callcenter.dialer.keys import DialerKeys
from callcenter.redis_server import EmbeddedRedis
from callcenter.redisconn import connect_sync

pytestmark = [pytest.mark.sip, pytest.mark.timeout(240)]

CALLER = "0912345678"          # the caller; also put on and off the DNC list, and in the CSV list
LISTED = "0987654321"          # only in the uploaded CSV
BROKEN = "0911222333"          # a contact whose stored record is corrupt: its lookup fails with a traceback
PIN = "739582"                 # 6 digits: short enough that the log's number pattern would not hide it
CAMPAIGN = "telesales_demo"

FLOW = f"""\
    name: privacy_pin
    start: crm
    nodes:
      # the CRM URL has no host: the lookup fails with a message carrying the caller's number
      crm: {{type: lookup, url: "http:///customers", params: {{phone: "{{caller}}"}}, result: {{name: name}},
             on_error: pin, next: pin}}
      pin:
        type: collect
        prompts: [hotline/menu_main]
        variable: pin
        sensitive: true
        min_digits: 6
        max_digits: 6
        timeout: 8
        next: check
      check:
        type: branch
        cases: [{{when: 'pin == "{PIN}"', next: ok}}]
        default: bye
      ok: {{type: event, name: pin_ok, data: {{pin: "{{pin}}", by: ivr}}, next: message}}
      message: {{type: record, variable: voicemail, max_seconds: 2, next: bye}}
      bye: {{type: hangup, prompts: [system/goodbye]}}
    """


def forms(number: str) -> list[str]:
    """Every way a Vietnamese number can be written in full: 0912345678, +84912345678, 84912345678, 912345678
    (the last is inside all the others)."""
    return [number, "+84" + number[1:], "84" + number[1:], number[1:]]


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server: Any) -> Iterator[WorkerProc]:
    tmp = tmp_path_factory.mktemp("privacy")
    flush(redis_server.url)
    flows = tmp / "ivr"
    shutil.copytree(REPO / "ivr_scripts", flows)        # the campaigns' flows must exist too
    (flows / "privacy_pin.yaml").write_text(textwrap.dedent(FLOW))
    w = new_worker(tmp, redis_server.url)
    w.write_config(ivr_scripts=flows, routes={"privacy": "privacy_pin", "default": "hotline"})
    w.start()
    yield w
    w.stop()


def api(w: WorkerProc, method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> int:
    """One authenticated API request (as an admin); its status."""
    conn = http.client.HTTPConnection("127.0.0.1", w.http_port, timeout=10)
    try:
        conn.request(method, path, body=body or None, headers={
            "content-type": content_type, "authorization": f"Bearer {admin_token(w.redis_url)}"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.fixture(scope="module")
def scenario(worker: WorkerProc) -> dict[str, Any]:
    """The call and the API traffic, once for the module; the call's CDR row and queue events."""
    caller = sipp.caller(worker.target, [("pause", 1500), *[("dtmf", d) for d in PIN], ("wait_bye", 30000)],
                         number=CALLER, service="privacy")
    assert sipp.wait_all(caller, timeout=90) == [0], caller.errors() + worker.tail(40)
    row = worker.call_from(CALLER)
    # a broken INVITE (no Via, no CSeq): pjsip logs the whole packet, numbers and all
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto((f"INVITE sip:privacy@{worker.target} SIP/2.0\r\nFrom: <sip:{CALLER}@127.0.0.1>;tag=1\r\n"
                  f"To: <sip:privacy@{worker.target}>\r\nCall-ID: broken-{LISTED}\r\nContent-Length: 0\r\n\r\n"
                  ).encode(), ("127.0.0.1", worker.sip_port))
    csv = f"phone,name\n{CALLER},An\n{LISTED},Binh\n".encode()
    statuses = {
        "upload": api(worker, "POST", f"/campaigns/{CAMPAIGN}/lists", csv, "text/csv"),
        "dnc_add": api(worker, "POST", "/dnc", json.dumps({"number": CALLER}).encode()),
        "dnc_remove": api(worker, "DELETE", f"/dnc/{CALLER}"),
        "contact": api(worker, "GET", f"/campaigns/{CAMPAIGN}/contacts/{CALLER}"),
    }
    r = connect_sync(worker.redis_url)
    r.hset(DialerKeys("cc:").contact(CAMPAIGN, "+84" + BROKEN[1:]), mapping={"data": "{not json"})
    r.close()
    statuses["broken"] = api(worker, "GET", f"/campaigns/{CAMPAIGN}/contacts/{BROKEN}")
    store = open_store(worker.store_url)
    try:
        events = store.events(row.call_id)
    finally:
        store.close()
    time.sleep(0.5)      # the access log line of the last request
    return {"row": row, "events": events, "statuses": statuses}


def test_the_log_has_no_full_number_and_no_pin(worker: WorkerProc, scenario: dict[str, Any]) -> None:
    assert scenario["statuses"] == {"upload": 201, "dnc_add": 201, "dnc_remove": 200, "contact": 200,
                                    "broken": 500}
    text = worker.log.read_text(errors="replace")
    for number in (CALLER, LISTED, BROKEN):
        for form in forms(number):
            assert form not in text, f"{form} in the worker log"
    assert PIN not in text
    lines = worker.logs()
    # what an operator still has: the tails, where each number was
    incoming = next(ln for ln in lines if ln.get("event") == "incoming call")
    assert incoming["caller"] == "*******678"
    failed = next(ln for ln in lines if ln.get("event") == "http handler failed")
    assert failed["path"] == f"/campaigns/{CAMPAIGN}/contacts/*******333" and "Traceback" in failed["exception"]
    lookup = next(ln for ln in lines if ln.get("event") == "ivr_node_failed")
    assert "phone=*******678" in lookup["error"]
    pjsip = next(ln["msg"] for ln in lines if ln.get("event") == "pjsip" and "end of packet" in ln["msg"])
    assert "<sip:*******678@127.0.0.1>" in pjsip and "Call-ID: broken-*******321" in pjsip
    access = [ln["event"] for ln in lines if ln.get("logger") == "twisted"]
    assert any('"DELETE /dnc/*******678 HTTP/1.1" 200' in a for a in access), access


def test_the_pin_is_not_in_the_cdr_nor_the_queue_log(scenario: dict[str, Any]) -> None:
    row, events = scenario["row"], scenario["events"]
    assert "privacy_pin.ok" in row.ivr_path                      # the flow compared the real digits
    assert row.ivr_digits == "privacy_pin.pin=***"
    pin_ok = [e for e in events if e.event == "PIN_OK"]
    assert pin_ok and pin_ok[0].data["pin"] == "***"
    assert PIN not in repr(row) and PIN not in repr(events)


def test_files_the_worker_makes_are_private(worker: WorkerProc, scenario: dict[str, Any]) -> None:
    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    recordings = worker.tmp / "recordings"
    messages = list(recordings.glob(f"{scenario['row'].call_id}-*.wav"))
    assert messages, sorted(p.name for p in recordings.iterdir())
    assert mode(worker.tmp) == 0o750 and mode(recordings) == 0o750
    assert [mode(p) for p in messages] == [0o640]
    db = worker.tmp / "cdr.db"
    for f in (db, db.with_name("cdr.db-wal"), db.with_name("cdr.db-shm")):
        if f.exists():
            assert mode(f) == 0o640, f


def test_embedded_redis_keeps_its_data_private(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        r = connect_sync(server.url)
        r.set("k", "v")
        r.close()
        aof = [p for p in server.directory.rglob("*") if p.is_file() and "appendonly" in p.name]
        assert aof
        assert stat.S_IMODE(server.directory.stat().st_mode) == 0o750
        for p in aof:
            assert stat.S_IMODE(p.stat().st_mode) & 0o027 == 0, p       # no write for the group, nothing for others
            assert stat.S_IMODE(p.parent.stat().st_mode) & 0o027 == 0, p.parent
        assert stat.S_IMODE(server.socket.stat().st_mode) & 0o077 == 0   # unixsocketperm 700
    finally:
        server.stop()
