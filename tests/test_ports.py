"""tests/ports.py: pytest sessions running at once on this machine never get the same port, a port some
process holds is skipped, and WORKER_BASE_PORT gives a session its own signalling range."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import ports
import pytest

HERE = Path(__file__).resolve().parent


def test_concurrent_sessions_get_disjoint_ports() -> None:
    """Four processes (as four pytest sessions would) take 50 ports and a worker's RTP range each, at once."""
    code = "import json, ports; print(json.dumps([[ports.port() for _ in range(50)], ports.block(2000, media=True)]))"
    env = {k: v for k, v in os.environ.items() if k != "WORKER_BASE_PORT"}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=HERE, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    got = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    signalling = [p for sigs, _ in got for p in sigs]
    assert len(set(signalling)) == 200, "a port was given twice"
    assert all(ports.SIGNALLING[0] <= p < ports.SIGNALLING[1] for p in signalling)
    rtp = sorted(first for _, first in got)
    assert all(b - a >= 2000 for a, b in zip(rtp, rtp[1:], strict=False)), f"RTP ranges overlap: {rtp}"
    assert all(first % 2 == 0 and ports.MEDIA[0] <= first <= ports.MEDIA[1] - 2000 for first in rtp)


def test_a_port_someone_holds_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool of four ports of its own (31000-31003, used by nothing else), one of them held over TCP only."""
    monkeypatch.delenv("WORKER_BASE_PORT", raising=False)
    monkeypatch.setattr(ports, "SIGNALLING", (31000, 31004))
    (ports.STATE_DIR / "31000-31004").unlink(missing_ok=True)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 31001))
        held.listen()
        assert [ports.port() for _ in range(3)] == [31000, 31002, 31003]
        assert ports.port() == 31000                 # round again, 31001 still held


def test_worker_base_port_gives_a_session_its_own_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_BASE_PORT", "31000")      # 31000-32999: below the media pool, used by nothing else
    first = ports.block(3)
    assert 31000 <= first <= 31000 + ports.PRIVATE_SPAN - 3
    assert ports.block(2000, media=True) >= ports.MEDIA[0]     # media ports stay in the shared pool
