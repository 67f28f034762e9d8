"""The outbound dialer inside a worker: its campaigns as this worker dials them, and its run.

Campaign ``dial_uri`` templates may say ``{trunk}``: it becomes the worker's ``sip.trunk`` (host:port).
Prompts (``abandon_prompt``, ``amd.machine_prompt``) are resolved to files under the worker's sounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Collection, Mapping
from pathlib import Path

from callcenter import logs
from callcenter.calls.amd import MachineDetector
from callcenter.calls.outbound import OutboundCalls
from callcenter.calls.preview import PreviewDesk
from callcenter.dialer.campaign import Campaign
from callcenter.dialer.engine import DialerEngine

log = logs.get("calls.dialing")


def with_trunk(campaigns: Mapping[str, Campaign], trunk: str) -> dict[str, Campaign]:
    """Resolve ``{trunk}`` in dial URI templates to the worker's trunk (host:port)."""
    out = {}
    for cid, c in campaigns.items():
        if "{trunk}" in c.dial_uri:
            c = dataclasses.replace(c, dial_uri=c.dial_uri.replace("{trunk}", trunk or "127.0.0.1:5060"))
        out[cid] = c
    return out


def resolve_prompt(prompt: str | None, sounds: Path, language: str = "vi") -> str | None:
    """A campaign prompt: a WAV path (absolute, or relative to the sounds directory or its parent)
    or a prompt name like ``telesales/abandon_ident`` under ``sounds/<language>/``."""
    if not prompt:
        return prompt
    cands = [Path(prompt), sounds / prompt, sounds.parent / prompt, sounds / language / f"{prompt}.wav",
             sounds / language / prompt]
    for c in cands:
        if c.is_file():
            return str(c.resolve())
    return prompt


def with_prompts(campaigns: Mapping[str, Campaign], sounds: Path) -> dict[str, Campaign]:
    """Resolve ``abandon_prompt`` and ``amd.machine_prompt`` to files; warn about missing ones (the
    call then just hangs up: a missing message must not keep a customer on a dead line)."""
    out = {}
    for cid, c in campaigns.items():
        ab, mp = resolve_prompt(c.abandon_prompt, sounds), resolve_prompt(c.machine_prompt, sounds)
        for key, v in (("abandon_prompt", ab), ("amd.machine_prompt", mp)):
            if v and not Path(v).is_file():
                log.warning("campaign prompt file not found", campaign=cid, key=key, prompt=v)
        out[cid] = dataclasses.replace(c, abandon_prompt=ab, machine_prompt=mp)
    return out


def prepare(campaigns: Mapping[str, Campaign], trunk: str, sounds: Path) -> dict[str, Campaign]:
    """The campaigns as this worker dials them (trunk and prompts resolved)."""
    return with_prompts(with_trunk(campaigns, trunk), sounds)


def missing_flows(campaigns: Mapping[str, Campaign], flows: Collection[str]) -> list[str]:
    """Campaigns whose IVR flow (or machine flow) is not among ``flows``: the dialer does not start."""
    bad = [c.id for c in campaigns.values() if c.ivr_flow and c.ivr_flow not in flows]
    return bad + [c.id for c in campaigns.values() if c.machine_flow and c.machine_flow not in flows]


async def run_dialer(engine: DialerEngine, desk: PreviewDesk, calls: OutboundCalls, amd: MachineDetector,
                     stop: asyncio.Event, grace: float) -> None:
    """Run every campaign until ``stop`` is set; then the desk closes and live calls' records are let
    finish for ``grace`` seconds."""
    sweeper = asyncio.ensure_future(desk.run(stop))
    try:
        await engine.run(stop)
    except Exception:
        log.exception("dialer failed")
    finally:
        sweeper.cancel()
        with contextlib.suppress(BaseException):
            await sweeper
        await desk.close()
        await calls.close(grace)
        amd.close()
