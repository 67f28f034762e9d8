"""Phones whose media is the test's own UDP socket, for tests that prove who hears whom by tones: a `Party`
sends its tone to whoever sends it RTP and keeps what it receives; `phone` is the sipp agent/supervisor phone
whose SDP names that socket; `bridged_call` puts a caller through to agent 1001. Shared by the monitoring and
conference tests."""

from __future__ import annotations

import math
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import ports
import sipp
import tones
from repo import REPO
from worker_proc import WorkerProc, flush, new_worker

from callcenter.cdr.writer import open_store

T = TypeVar("T")

TONES = (500.0, 1100.0, 1700.0)        # what a Party listens for unless told otherwise
RATE, FRAME = tones.RATE, tones.FRAME


# -- audio --------------------------------------------------------------------------------------------

class Party:
    """One phone's media: sends its tone to whoever sends it RTP, keeps what it receives."""

    def __init__(self, hz: float, listen: Sequence[float] = TONES) -> None:
        self.hz, self.listen = hz, list(listen)
        self.port = ports.block(2, media=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.005)
        self.received: list[bytes] = []       # A-law payloads in arrival order
        self.peer: tuple[str, int] | None = None
        # whole periods of the tone in whole packets, looped
        pcm = tones.tone_pcm(hz, FRAME * 1000 // math.gcd(int(hz), RATE), amplitude=0.25)
        self.payloads = [tones.encode(pcm[i:i + FRAME], tones.PCMA) for i in range(0, len(pcm), FRAME)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seq, ts, n = 0, 0, 0
        next_send = time.monotonic()
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
                if len(data) > 12 and data[0] >> 6 == 2 and data[1] & 0x7F == 8:
                    self.received.append(data[12 + 4 * (data[0] & 0x0F):])
                    self.peer = addr
            except TimeoutError:
                pass
            now = time.monotonic()
            if self.peer is not None and now >= next_send:
                header = bytes([0x80, 8]) + seq.to_bytes(2, "big") + ts.to_bytes(4, "big") + b"\x00\x00\x51\x52"
                self.sock.sendto(header + self.payloads[n % len(self.payloads)], self.peer)
                seq, ts, n = (seq + 1) & 0xFFFF, (ts + FRAME) & 0xFFFFFFFF, n + 1
                next_send = max(next_send + 0.02, now - 0.1)

    def heard(self, skip: int = 15, count: int = 60, timeout: float = 30.0) -> set[float]:
        """The tones in the `count` packets that arrive after the next `skip` (jitter buffers drain)."""
        first = len(self.received) + skip
        deadline = time.monotonic() + timeout
        while len(self.received) < first + count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.received) - first + skip} RTP packets arrived")
            time.sleep(0.05)
        return tones.detect([x for p in self.received[first:first + count] for x in tones.decode(p, tones.PCMA)], self.listen)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


# -- phones -------------------------------------------------------------------------------------------

HOLD, RESUME = "2353687639", "2353687640"   # the SDP versions of a phone's own re-INVITEs (sipp.agent)


def phone(media_port: int, mode: str = "answer", port: int | None = None, steps: list[tuple] | None = None) -> sipp.Sipp:
    """A phone (an agent's or a supervisor's) whose RTP is the test's `media_port`. mode: 'answer' (waits for
    the worker's BYE), 'busy' (486), 'noanswer' (rings until CANCEL), 'hangup' (answers, hangs up itself 1.5 s
    later), 'reinvite' (answers, 6 s later holds with a re-INVITE a=sendonly, 2 s later resumes, then waits for
    the BYE). Every message it sends or receives is kept (the offer's X-Callcenter-Call-Id). `steps`:
    sipp.agent's phone steps after answering (mode 'answer')."""
    if mode == "reinvite":
        steps = [("pause", 6000), ("reinvite", "sendonly"), ("pause", 2000), ("reinvite", "sendrecv")]
    sipp_mode = {"busy": "486", "hangup": "answer_bye", "noanswer": "noanswer"}.get(mode, "answer")
    return sipp.agent(port or ports.port(), sipp_mode, ring_ms=100, talk_ms=1500, timeout_s=180, codecs="8",
                      trace=True, steps=steps, media_port=media_port)


def bridged_call(w: WorkerProc, caller: Party, agent: Party, agent_phone: sipp.Sipp, pause_ms: int,
                 phones: list[sipp.Sipp]) -> str:
    """Agent 1001 logs in and a caller whose RTP is `caller` calls (its sipp added to `phones`), hanging up
    after pause_ms; once caller and agent hear each other and nobody else: the call id, which the agent's
    phone learns from the offer's X-Callcenter-Call-Id."""
    w.login("1001")
    phones.append(sipp.caller(w.target, [("pause", pause_ms), ("hangup",)], codecs="8", media_port=caller.port))
    found = wait_for(lambda: re.search(r"X-Callcenter-Call-Id: (\w+)", agent_phone.messages()), "the agent's offer")
    assert caller.heard() == {agent.hz} and agent.heard() == {caller.hz}
    return found.group(1)


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


def close_all(phones: Sequence[sipp.Sipp], parties: Sequence[Party]) -> None:
    """A test's end: its phones stopped, its parties' sockets closed."""
    for p in phones:
        p.stop()
    for party in parties:
        party.close()


def rules_with_phones(tmp: Path, phones: dict[str, int], agents: Sequence[str]) -> Path:
    """The repo's routing rules with each of `agents`' phones on a port of its own (set in `phones`, with the
    trunk's under "trunk"), 6 s ring timeouts and no wrap-up (the next test's offer at once)."""
    rules = (REPO / "routing_rules.yaml").read_text()
    phones["trunk"] = ports.port()
    for agent in agents:
        phones[agent] = ports.port()
        rules = rules.replace(f"sip:{agent}@127.0.0.1:5070", f"sip:{agent}@127.0.0.1:{phones[agent]}")
    rules = re.sub(r"ring_timeout: \d+", "ring_timeout: 6", rules)
    rules = re.sub(r"wrapup: \d+", "wrapup: 0", rules)
    (tmp / "rules.yaml").write_text(rules)
    return tmp / "rules.yaml"


def tone_worker(tmp: Path, redis_url: str, phones: dict[str, int], agents: Sequence[str], flow: str,
                sounds: Path | None = None, extra: str = "") -> WorkerProc:
    """A started worker whose default route is the IVR `flow` (YAML, named "direct"), with `agents`' phones and
    the trunk on ports of their own (rules_with_phones) and monitor/conference/transfer rings of 10 s; `extra`:
    more of its config (YAML lines)."""
    flush(redis_url)
    w = new_worker(tmp, redis_url)
    rules = rules_with_phones(tmp, phones, agents)
    (tmp / "flows").mkdir()
    (tmp / "flows" / "direct.yaml").write_text(flow)
    w.write_config(rules=rules, ivr_scripts=tmp / "flows", routes={"default": "direct"}, sounds=sounds,
                   extra="monitor: {ring_timeout: 10}\n" + extra, trunk=f"127.0.0.1:{phones['trunk']}")
    return w.start()


def sounds_with_music(tmp: Path, name: str, hz: float) -> Path:
    """A sounds folder: the repo's prompts, and `name`.wav, 10 s of a tone at `hz` (a queue's music)."""
    sounds = tmp / "sounds"
    sounds.mkdir()
    for entry in (REPO / "sounds").iterdir():
        (sounds / entry.name).symlink_to(entry)
    tones.write_tone_wav(sounds / f"{name}.wav", hz, 10_000)
    return sounds


def legs(w: WorkerProc, call_id: str, kind: str, n: int, timeout: float = 20.0) -> list:
    deadline = time.monotonic() + timeout
    found: list = []
    while time.monotonic() < deadline:
        store = open_store(w.store_url)
        try:
            found = [leg for leg in store.legs(call_id) if leg.kind == kind]
        except Exception:  # noqa: BLE001 - the writer has not created the store yet
            found = []
        finally:
            store.close()
        if len(found) >= n:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{len(found)} {kind} legs of {call_id}:\n{w.tail()}")
