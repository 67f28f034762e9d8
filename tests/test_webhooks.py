"""Webhooks of a real worker against a real local HTTP receiver: a CRM that fails twice and then accepts
gets the event exactly once accepted, every attempt signed (the signature verifies with the secret) and
carrying the same Idempotency-Key; a hook that never accepts ends in the dead letters (admin API and
metric) after max_attempts."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tone_parties import wait_for
from worker_proc import METRICS_TOKEN, WorkerProc, admin_token, fetch, flush, new_worker

from callcenter.events.webhooks import SIGNATURE, verify

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]

SECRET = "test-webhook-secret-0123456789"


@dataclass
class Receiver:
    """The CRM: /hook answers 500 to the first two attempts of each event, then 200; /broken 500 until mended;
    /gated 500 until the test opens it."""

    got: list[tuple[str, dict[str, str], bytes, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate_open: bool = False
    broken_mended: bool = False      # /broken accepts from now on

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            tries = sum(1 for p, h, _, _ in self.got if p == path and h["idempotency-key"] == headers["idempotency-key"])
            status = 200 if path == "/hook" and tries >= 2 or path == "/gated" and self.gate_open \
                or path == "/broken" and self.broken_mended else 500
            self.got.append((path, headers, body, status))
            return status

    def requests(self, path: str) -> list[tuple[dict[str, str], dict[str, Any], int, bytes]]:
        with self.lock:
            return [(h, json.loads(b), s, b) for p, h, b, s in self.got if p == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, int]]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = rec.answer(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield rec, server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, redis_server, receiver: tuple[Receiver, int]) -> Iterator[WorkerProc]:
    tmp = tmp_path_factory.mktemp("webhooks")
    flush(redis_server.url)
    port = receiver[1]
    w = new_worker(tmp, redis_server.url)
    w.env = {"CRM_HOOK_SECRET": SECRET}
    w.write_config(extra=f"""webhooks:
  crm: {{url: "http://127.0.0.1:{port}/hook", secret_env: CRM_HOOK_SECRET, events: [agent.state], timeout: 2s,
        max_attempts: 5, backoff: 0.2s, max_backoff: 1s}}
  broken: {{url: "http://127.0.0.1:{port}/broken", secret_env: CRM_HOOK_SECRET, events: ["agent.*"],
           max_attempts: 3, backoff: 0.1s, max_backoff: 0.2s}}
""")
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


def test_delivered_once_signed_after_two_failures_and_dead_lettered_elsewhere(
        worker: WorkerProc, receiver: tuple[Receiver, int]) -> None:
    rec, _ = receiver
    status, _ = worker.http("POST", "/agents/1003/login", {"ready": True})
    assert status == 200
    accepted = wait_for(lambda: [r for r in rec.requests("/hook") if r[2] == 200], "event accepted by the CRM")
    key = accepted[0][0]["idempotency-key"]
    dead = wait_for(lambda: worker.http("GET", "/admin/webhooks/dead")[1]["dead_letters"], "dead letter")
    assert dead[0]["webhook"] == "broken" and dead[0]["event_id"] == key and dead[0]["attempts"] == "3"
    assert dead[0]["error"] == "HTTP 500" and dead[0]["event"]["agent"] == "1003"

    # a later event passing through both hooks: by then the first one is long settled
    assert worker.http("POST", "/agents/1003/pause", {"reason": "break"})[0] == 200
    wait_for(lambda: len([r for r in rec.requests("/hook") if r[2] == 200]) >= 2, "second event accepted")

    attempts = [r for r in rec.requests("/hook") if r[0]["idempotency-key"] == key]
    assert [r[2] for r in attempts] == [500, 500, 200]            # delivered exactly once
    for headers, body, _, raw in attempts:
        assert verify(SECRET, raw, headers[SIGNATURE.lower()], time.time())
        assert headers["x-callcenter-event"] == "agent.state" == body["type"]
        assert body["id"] == key and body["agent"] == "1003" and body["state"] == "available"
    assert len([r for r in rec.requests("/broken") if r[0]["idempotency-key"] == key]) == 3
    assert SECRET not in worker.log.read_text()

    status, _, metrics = fetch(worker, "/metrics", METRICS_TOKEN)
    text = metrics.decode()
    assert 'callcenter_webhook_dead_letters_total{webhook="broken"}' in text
    assert 'callcenter_webhook_deliveries_total{result="delivered",webhook="crm"} 2.0' in text
    assert 'callcenter_webhook_deliveries_total{result="failed",webhook="crm"} 4.0' in text
    assert worker.http("GET", "/admin/webhooks/dead", token=None)[0] == 401



def test_an_admin_retries_a_dead_letter(worker: WorkerProc, receiver: tuple[Receiver, int]) -> None:
    rec, _ = receiver
    letters = wait_for(lambda: worker.http("GET", "/admin/webhooks/dead")[1]["dead_letters"], "a dead letter")
    letter = letters[0]
    rec.broken_mended = True
    try:
        status, body = worker.http("POST", f"/admin/webhooks/dead/{letter['id']}/retry")
        assert (status, body["event_id"], body["webhook"]) == (202, letter["event_id"], "broken"), body
        wait_for(lambda: [r for r in rec.requests("/broken") if r[0]["idempotency-key"] == letter["event_id"]
                          and r[2] == 200], "the retried event accepted")
        left = worker.http("GET", "/admin/webhooks/dead")[1]["dead_letters"]
        assert letter["id"] not in [x["id"] for x in left]
        assert worker.http("POST", f"/admin/webhooks/dead/{letter['id']}/retry")[0] == 404
        assert worker.http("POST", "/admin/webhooks/dead/nope/retry")[0] == 400
    finally:
        rec.broken_mended = False


def test_workers_share_the_deliveries_and_each_event_goes_once(
        worker: WorkerProc, receiver: tuple[Receiver, int], tmp_path: Path) -> None:
    rec, _ = receiver
    second = new_worker(tmp_path, worker.redis_url, worker_id="w2")
    second.env = dict(worker.env)
    second.config.write_text(worker.config.read_text().replace("id: w1", "id: w2")
                             .replace(f"port: {worker.sip_port}", f"port: {second.sip_port}")
                             .replace(f"port: {worker.http_port}", f"port: {second.http_port}")
                             .replace(f"rtp_port: {worker.rtp_port}", f"rtp_port: {second.rtp_port}"))
    second.start()
    try:
        before = {r[0]["idempotency-key"] for r in rec.requests("/hook")}
        for _ in range(5):
            worker.login("1004")
            worker.logout("1004")
        def accepted() -> set[str] | None:
            new = {r[0]["idempotency-key"] for r in rec.requests("/hook") if r[2] == 200} - before
            return new if len(new) >= 10 else None

        keys = wait_for(accepted, "ten events accepted")
        for key in keys:
            assert [r[2] for r in rec.requests("/hook") if r[0]["idempotency-key"] == key] == [500, 500, 200]
        by = {w.worker_id: {e["event_id"] for e in w.logs() if e.get("event") == "webhook delivered"} & keys
              for w in (worker, second)}
        assert by["w1"] | by["w2"] == keys and not by["w1"] & by["w2"], by
    finally:
        assert second.stop() == 0, second.tail()


def test_what_a_dead_worker_was_retrying_is_delivered_by_another(
        redis_server, receiver: tuple[Receiver, int], tmp_path: Path) -> None:
    """Two workers of their own deployment (prefix t2:): the one retrying an event is killed (SIGKILL) between
    attempts; the other claims the event once it has been idle past any retry step and delivers it, once."""
    rec, port = receiver
    workers = []
    for wid in ("w1", "w2"):
        (tmp_path / wid).mkdir()
        w = new_worker(tmp_path / wid, redis_server.url, worker_id=wid)
        w.env = {"CRM_HOOK_SECRET": SECRET}
        w.write_config(extra=f"""webhooks:
  gated: {{url: "http://127.0.0.1:{port}/gated", secret_env: CRM_HOOK_SECRET, events: [agent.state], timeout: 1s,
          max_attempts: 10, backoff: 3s, max_backoff: 3s}}
""")
        w.config.write_text(w.config.read_text().replace('prefix: "cc:"', 'prefix: "t2:"'))
        workers.append(w.start())
    try:
        status, _ = workers[0].http("POST", "/agents/1004/login", {"ready": True}, token=admin_token(redis_server.url,
                                                                                                     "t2:"))
        assert status == 200
        first = wait_for(lambda: rec.requests("/gated"), "a first attempt")
        key = first[0][0]["idempotency-key"]

        def holder() -> WorkerProc | None:
            return next((w for w in workers if any(e.get("event_id") == key for e in w.logs())), None)

        dying = wait_for(holder, "the worker that tried")
        dying.stop(signal.SIGKILL)       # in its retry delay (1.5-3 s): the event stays pending under its name
        rec.gate_open = True
        survivor = next(w for w in workers if w is not dying)
        wait_for(lambda: [r for r in rec.requests("/gated") if r[2] == 200], "delivery by the survivor", timeout=60)
        assert [r[2] for r in rec.requests("/gated") if r[0]["idempotency-key"] == key] == [500, 200]
        assert any(e.get("event") == "webhook delivered" and e.get("event_id") == key for e in survivor.logs())
    finally:
        rec.gate_open = False
        for w in workers:
            w.stop()
