"""Dry-run a flow without a call: a scripted leg, simulated services, a printed transcript."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.exceptions import CallGone, ConfigError
from callcenter.ivr import prompts as prompt_files
from callcenter.ivr.checker import load_scripts
from callcenter.ivr.model import IvrIssue, ScriptSet, split_prompt
from callcenter.ivr.runner import IvrResult, IvrRunner
from callcenter.ivr.script import parse_script
from callcenter.ivr.services import QueueOutcome, SimulatedServices
from callcenter.telephony.api import HangupInfo, HangupSide, Leg, ReferOutcome

DTMF_KEYS = set("0123456789*#")


class ScriptedLeg:
    """A Leg whose caller types from a list: each element answers one collect ('' = timeout,
    'hangup' = the caller hangs up). Everything played, transferred or recorded is kept.

    Like a real leg, a barge-in prompt is cut short by the caller's next key: when the next
    scripted input starts with a digit, ``play(barge_in=True)`` plays only the first file,
    returns that digit and leaves it buffered for the collect that follows (``barged`` keeps
    the prompts that were cut). ``barge_in=False`` makes the caller always listen to the end."""

    def __init__(self, inputs: Sequence[str] = (), caller: str = "0900000000", called: str = "1900",
                 hangup_when_done: bool = False, barge_in: bool = True) -> None:
        self.id = uuid.uuid4().hex
        self.sip_call_id = f"{self.id}@simulated"
        self.caller = caller
        self.caller_verified = False   # a simulated From, like an untrusted one
        self.called = called
        self.created = time.time()
        self.inputs = deque(inputs)
        self.hangup_when_done = hangup_when_done
        self.barge_in = barge_in
        self.played: list[str] = []
        self.barged: list[str] = []
        self.transferred_to: str | None = None
        self.recorded: list[str] = []
        self.answered = False
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def _alive(self) -> None:
        if self._ended:
            raise CallGone(self.id)

    async def answer(self) -> None:
        self._alive()
        self.answered = True

    async def ring(self) -> None:
        self._alive()

    async def play(self, prompts: Sequence[str], barge_in: bool = True) -> str | None:
        self._alive()
        nxt = self.inputs[0].strip() if self.inputs else ""
        if barge_in and self.barge_in and prompts and nxt[:1] in DTMF_KEYS:
            self.played.append(prompts[0])
            self.barged.append(prompts[0])
            return nxt[0]
        self.played.extend(prompts)
        return None

    async def collect(self, max_digits: int, timeout: float, inter_digit_timeout: float | None = None,
                      terminator: str | None = "#") -> str:
        self._alive()
        if not self.inputs:
            if self.hangup_when_done:
                self._ended = True
                raise CallGone(self.id)
            return ""
        typed = self.inputs.popleft().strip()
        if typed == "hangup":
            self._ended = True
            raise CallGone(self.id)
        if terminator and terminator in typed:
            typed = typed[:typed.index(terminator)]
        return typed[:max_digits]

    def flush_digits(self) -> None:
        pass

    async def start_hold(self, music: str) -> None:
        self._alive()

    async def stop_hold(self) -> None:
        pass

    def on_remote_hold(self, listener: Callable[[bool], None] | None) -> None:
        pass

    def on_transfer_request(self, listener: Callable[[str, ReferOutcome], None] | None) -> None:
        pass

    async def record(self, path: str, max_seconds: float, silence_seconds: float | None = None) -> float:
        self._alive()
        self.recorded.append(path)
        return 0.0

    async def bridge(self, other: Leg) -> None:
        self._alive()

    async def transfer(self, uri: str) -> None:
        self._alive()
        self.transferred_to = uri
        self._ended = True

    async def hangup(self, sip_code: int = 200) -> None:
        self._ended = True

    async def wait_ended(self) -> HangupInfo:
        return HangupInfo(HangupSide.SYSTEM, 200, "BYE")


@dataclass
class Transcript:
    lines: list[str] = field(default_factory=list)
    texts: dict[str, dict[str, str]] = field(default_factory=dict)

    def _text(self, name: str, lang: str) -> str:
        if name.startswith("tts:"):
            return name[4:]
        lang, name = split_prompt(name, lang)
        return self.texts.get(name, {}).get(lang, f"<{name}>")

    def __call__(self, event: str, node: str, detail: dict[str, Any]) -> None:
        if event == "node":
            self.lines.append(f"{node} ({detail['type']})")
        elif event == "play":
            lang = detail["language"]
            names = detail["prompts"]
            spoken = " ".join(self._text(n, lang) for n in names)
            self.lines.append(f"    play [{lang}] {' '.join(names)}")
            if self.texts:
                self.lines.append(f"         \u201c{spoken}\u201d")
        elif event == "input":
            self.lines.append(f"    input {detail['digits']!r}" + (" (timeout)" if not detail["digits"] else ""))
        elif event == "set":
            self.lines.append(f"    set {detail['name']} = {detail['value']!r}"
                              + (" (already known: not asked)" if detail.get("preset") else ""))
        elif event == "end":
            self.lines.append(f"end: {detail['outcome']}")
        else:
            shown = ", ".join(f"{k}={v!r}" for k, v in detail.items())
            self.lines.append(f"    {event} {shown}")


def load_for(script_file: str | Path) -> tuple[ScriptSet, str]:
    """The ScriptSet of the file's directory (for goto and the calendar) and the file's script name."""
    p = Path(script_file)
    issues: list[IvrIssue] = []
    script = parse_script(p, issues)
    if script is None:
        raise ConfigError("; ".join(str(i) for i in issues) or "cannot parse", file=str(p))
    return load_scripts(p.parent), script.name


async def simulate(scripts: ScriptSet, entry: str, digits: Sequence[str], *, caller: str = "0900000000",
                   called: str = "1900", variables: dict[str, Any] | None = None,
                   language: str | None = None, sounds_dir: str | Path = "sounds",
                   queue_outcome: QueueOutcome = QueueOutcome.CONNECTED, hangup_when_done: bool = False,
                   now: dt.datetime | None = None) -> tuple[IvrResult, Transcript, SimulatedServices]:
    texts: dict[str, dict[str, str]] = {}
    texts_file = Path(sounds_dir) / "prompts.yaml"
    if texts_file.exists():
        texts = prompt_files.load_texts(texts_file)
    transcript = Transcript(texts=texts)
    services = SimulatedServices(queue_outcome=queue_outcome)
    leg = ScriptedLeg(digits, caller, called, hangup_when_done)
    runner = IvrRunner(scripts, services, sounds_dir, trace=transcript,
                       clock=(lambda: now) if now else None, recordings_dir=Path(sounds_dir).parent / "var" / "sim")
    result = await runner.run(leg, entry, variables, language)
    return result, transcript, services


def simulate_sync(*args: Any, **kwargs: Any) -> tuple[IvrResult, Transcript, SimulatedServices]:
    return asyncio.run(simulate(*args, **kwargs))
