"""`callcenter doctor` reports the real build's limits and fails loudly on what is wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from repo import REPO


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callcenter", "doctor", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def _config(redis_url: str, name: str) -> Path:
    cfg = (REPO / "callcenter.yaml").read_text().replace("${REDIS_URL}", redis_url)
    path = REPO / "var" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(cfg.replace("ivr_scripts: ivr_scripts", f"ivr_scripts: {REPO / 'ivr_scripts'}")
                    .replace("sounds: sounds", f"sounds: {REPO / 'sounds'}")
                    .replace("routing_rules: routing_rules.yaml", f"routing_rules: {REPO / 'routing_rules.yaml'}")
                    .replace("campaigns: campaigns", f"campaigns: {REPO / 'campaigns'}"))
    return path


def test_doctor_reports_the_call_center_build(redis_server) -> None:
    path = _config(redis_server.url, "doctor-test.yaml")
    try:
        res = doctor("--config", str(path))
    finally:
        path.unlink()
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert any(line.startswith("ok ") and "PJSUA_MAX_CALLS" in line and "1024" in line for line in lines)
    assert any(line.startswith("ok ") and "players (probed)" in line and "2000+" in line for line in lines)
    assert any(line.startswith("ok ") and "redis" in line and "appendonly=yes" in line for line in lines)


def test_doctor_fails_on_an_invalid_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("redis:\n  url: redis://127.0.0.1:1/0\nsip:\n  transports: [udp, sctp]\n")
    res = doctor("--config", str(bad))
    assert res.returncode == 1
    assert "FAIL config" in res.stdout and f"{bad}:4: sip.transports[1]: expected one of udp, tcp, got \"sctp\"" in res.stdout


def test_doctor_fails_when_redis_is_unreachable() -> None:
    path = _config("redis://127.0.0.1:1/0", "doctor-noredis.yaml")
    try:
        res = doctor("--config", str(path))
    finally:
        path.unlink()
    assert res.returncode == 1
    assert any(line.startswith("FAIL redis") and "unreachable" in line for line in res.stdout.splitlines())
