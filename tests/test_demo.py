"""The README's demo, as a newcomer runs it: `callcenter demo` with its own embedded Redis, the
hotline, demo agent phones, the wallboard and /metrics. Ports moved off the defaults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import ports
import pytest
import sipp
from repo import REPO
from worker_proc import demo_rules

pytestmark = [pytest.mark.sip, pytest.mark.timeout(120)]


def test_demo_hotline_answers_and_a_demo_agent_talks(tmp_path: Path) -> None:
    sip_port, http_port, agents_port = (ports.port() for _ in range(3))
    rtp_port = ports.block(2000, media=True)
    rules = demo_rules(agents_port)
    (tmp_path / "routing_rules.yaml").write_text(rules)
    cfg = (REPO / "callcenter.yaml").read_text()
    cfg = cfg.replace("port: 5060", f"port: {sip_port}").replace("port: 8080", f"port: {http_port}")
    cfg = cfg.replace("data_dir: var", f"data_dir: {tmp_path / 'var'}")
    cfg = cfg.replace("store: sqlite:///var/cdr.db", f"store: sqlite:///{tmp_path / 'var' / 'cdr.db'}")
    cfg = cfg.replace("rtp_port: 10000", f"rtp_port: {rtp_port}").replace("rtp_port_range: 20000", "rtp_port_range: 2000")
    cfg = cfg.replace("ivr_scripts: ivr_scripts", f"ivr_scripts: {REPO / 'ivr_scripts'}")
    cfg = cfg.replace("sounds: sounds", f"sounds: {REPO / 'sounds'}")
    cfg = cfg.replace("routing_rules: routing_rules.yaml", f"routing_rules: {tmp_path / 'routing_rules.yaml'}")
    cfg = cfg.replace("campaigns: campaigns", f"campaigns: {REPO / 'campaigns'}")
    (tmp_path / "callcenter.yaml").write_text(cfg)
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["CRM_URL"] = "http://127.0.0.1:9"
    env["METRICS_TOKEN"] = "demo-test-metrics"
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115
    demo = subprocess.Popen([sys.executable, "-m", "callcenter", "demo", "--config", str(tmp_path / "callcenter.yaml"),
                             "--agents-port", str(agents_port)], stdout=log, stderr=subprocess.STDOUT, env=env,
                            cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while b'"worker ready"' not in (tmp_path / "demo.log").read_bytes():
            assert demo.poll() is None and time.monotonic() < deadline, (tmp_path / "demo.log").read_text()
            time.sleep(0.2)
        assert (tmp_path / "var" / "redis" / "redis.sock").exists()   # its own Redis on a unix socket
        # English (2) during the welcome, then support (2); a demo agent rings 2 s and answers.
        caller = sipp.caller(f"127.0.0.1:{sip_port}", [("pause", 600), ("dtmf", "2"), ("pause", 800), ("dtmf", "2"),
                                                      ("pause", 12000), ("hangup",)], number="0912000001")
        assert caller.wait(60) == 0, caller.errors()
        # the demo's API users: passwords generated, printed, kept in var/demo-users.txt (0600)
        users_file = tmp_path / "var" / "demo-users.txt"
        assert users_file.stat().st_mode & 0o777 == 0o600
        passwords = dict(line.split(" ", 1) for line in users_file.read_text().splitlines())
        assert set(passwords) == {"agent1001", "supervisor", "manager", "admin"}
        assert passwords["supervisor"] in (tmp_path / "demo.log").read_text()
        api = f"http://127.0.0.1:{http_port}"
        login = urllib.request.Request(f"{api}/auth/login", method="POST", headers={"content-type": "application/json"},
                                       data=json.dumps({"user": "supervisor", "password": passwords["supervisor"]}).encode())
        with urllib.request.urlopen(login, timeout=5) as resp:
            cookie = resp.headers["Set-Cookie"].split(";")[0]
        board = json.load(urllib.request.urlopen(urllib.request.Request(f"{api}/wallboard", headers={"cookie": cookie}),
                                                 timeout=5))
        support = next(q for q in board["queues"] if q["queue"] == "support")
        assert support["answered_today"] == 1
        # the web console: its URL printed, its page answered with that session
        assert f"Web console: {api}/console" in (tmp_path / "demo.log").read_text()
        with urllib.request.urlopen(urllib.request.Request(f"{api}/console", headers={"cookie": cookie}),
                                    timeout=5) as resp:
            assert resp.status == 200 and b'id="cc-boot"' in resp.read()
        scrape = urllib.request.Request(f"{api}/metrics", headers={"authorization": "Bearer demo-test-metrics"})
        metrics = urllib.request.urlopen(scrape, timeout=5).read().decode()
        assert 'callcenter_queue_answered_total{queue="support"} 1.0' in metrics
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 0, (tmp_path / "demo.log").read_text()[-3000:]
