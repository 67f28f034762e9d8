"""The outbound dialer inside a softswitch worker: wires :class:`DialerEngine` to the worker's
SIP stack, ACD queues, IVR runner and CDR buffer.

Every dial attempt leaves a CallRecord (direction "outbound", campaign, outcome) and a LegRecord,
answered or not, so outbound KPIs come from the same store as inbound ones. Campaign ``dial_uri``
templates may say ``{trunk}``: it becomes the worker's ``sip.trunk`` (host:port).

Preview mode: an agent takes the next record (:meth:`Outbound.preview_take`, leased to this dialer
and held for that agent), then dials it (:meth:`Outbound.preview_dial`: the agent's phone rings
first, then the customer's, and the two are bridged) or skips it. The HTTP routes reach these
through ``worker.outbound`` (set while the dialer runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

from callcenter import logs
from callcenter.cdr.dispositions import disposition_from_events
from callcenter.cdr.record import CallRecord, LegRecord, new_id
from callcenter.dialer import assignment, phone
from callcenter.dialer.amd import classify_pcm16
from callcenter.dialer.campaign import Campaign
from callcenter.dialer.compliance import Compliance
from callcenter.dialer.engine import DialerEngine, DialRequest
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.outcomes import FROM_ORIGINATE
from callcenter.exceptions import CallGone, TelephonyError
from callcenter.ivr.runner import IvrRunner
from callcenter.ivr.services import QueueOutcome, QueueRequest
from callcenter.routing.keys import Keys as RoutingKeys
from callcenter.routing.router import connect
from callcenter.tasks import TaskSet
from callcenter.telephony.api import HangupSide, Leg, OriginateResult

log = logs.get("outbound")

AGENT_RESERVE_WAIT = 1.5     # inside the engine's 2 s compliance grace (TCPA / abandon rules)
BUSY_STATES = ("reserved", "on_call", "wrap_up")
PREVIEW_HOLD = 300.0         # a previewed record not dialed or skipped in 5 min goes back to the list
PREVIEW_AGENT_RING = 20.0
AMD_SECONDS = 2.5
OUTBOUND_PRIORITY = 100      # an answered customer must not wait behind inbound callers: the grace is 2 s

_CDR_OUTCOME = {OriginateResult.BUSY: "busy", OriginateResult.NO_ANSWER: "no_answer",
                OriginateResult.REJECTED: "rejected", OriginateResult.INVALID: "failed",
                OriginateResult.FAILED: "failed"}


# The IVR events of the outbound call running in the current task (IvrServices carry no call id).
_CALL_EVENTS: contextvars.ContextVar[list[tuple[str, dict[str, Any]]] | None] = contextvars.ContextVar(
    "outbound_call_events", default=None)


def with_trunk(campaigns: dict[str, Campaign], trunk: str) -> dict[str, Campaign]:
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


def with_prompts(campaigns: dict[str, Campaign], sounds: Path) -> dict[str, Campaign]:
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


class DialerServices:
    """IvrServices for outbound flows: the worker's queues, plus the dialer's DNC list and a per-call
    record of the flow's events (which become the contact's disposition)."""

    def __init__(self, queues: Any, dnc: Any) -> None:
        self.queues = queues
        self.dnc = dnc

    async def queue(self, leg: Leg, request: QueueRequest) -> QueueOutcome:
        out: QueueOutcome = await self.queues.queue(leg, request)
        return out

    async def add_dnc(self, number: str, scope: str) -> None:
        events = _CALL_EVENTS.get()
        if events is not None:
            events.append(("dnc", {"scope": scope}))
        if self.queues.dnc != self.dnc:
            await self.dnc(number, scope)
        await self.queues.add_dnc(number, scope)   # the worker's DNC writer (if any) + the DNC queue event

    async def emit(self, event: str, data: dict[str, Any]) -> None:
        events = _CALL_EVENTS.get()
        if events is not None:
            events.append((event, dict(data)))
        await self.queues.emit(event, data)


class Outbound:
    """The dialer's side of one worker: the engine's callbacks, CDRs, the free-agent cache."""

    def __init__(self, worker: Any, redis: Any, campaigns: dict[str, Campaign]) -> None:
        self.worker = worker
        self.cfg = worker.cfg
        self.redis = redis
        self.campaigns = campaigns
        self.compliance = Compliance(redis, DialerKeys(self.cfg.redis.prefix))
        self.rkeys = RoutingKeys(self.cfg.redis.prefix)
        self.engine: DialerEngine | None = None
        self.previews: dict[tuple[str, str], tuple[DialRequest, str, float]] = {}
        self.router = worker.router
        self.records: dict[str, CallRecord] = {}
        self.uris: dict[str, str] = {}
        self.tasks = TaskSet()
        self.services = DialerServices(worker.queues, self.add_dnc)
        self.ivr = IvrRunner(worker.scripts, self.services, self.cfg.sounds,
                             recordings_dir=self.cfg.data_dir / "recordings",
                             dial_policy=worker.dial_policy, trunk=self.cfg.trunk)
        self.amd_dir = Path(tempfile.mkdtemp(prefix="cc-amd-"))
        music = Path(self.cfg.queue.music)
        self.music = music if music.is_file() else Path(self.cfg.sounds) / "moh.wav"

    # -- the Softswitch the engine sees: the worker's, plus a CDR per attempt -------------------

    async def originate(self, uri: str, caller_id: str, ring_timeout: float,
                        headers: dict[str, str] | None = None) -> tuple[OriginateResult, Leg | None]:
        start = time.time()
        campaign = (headers or {}).get("X-CC-Campaign")
        called = uri.split(":", 1)[-1].split("@", 1)[0]
        try:
            result, leg = await self.worker.switch.originate(uri, caller_id, ring_timeout, headers=headers)
        except asyncio.CancelledError:
            await asyncio.shield(self._unanswered(uri, caller_id, called, campaign, start, "failed", "cancelled"))
            raise
        if result is not OriginateResult.ANSWERED or leg is None:
            await self._unanswered(uri, caller_id, called, campaign, start, _CDR_OUTCOME.get(result, "failed"),
                                   result.value)
            return result, None
        rec = CallRecord(leg.id, "outbound", caller_id, called, start, answer=time.time(), campaign=campaign,
                         worker_id=self.cfg.worker_id)
        self.records[leg.id] = rec
        self.uris[leg.id] = uri
        self.worker.queues.records[leg.id] = rec   # the queue fills in agent, wait and talk times
        await self._cdr_call(rec)
        self.tasks.spawn(self._finish(leg, rec, uri), "outbound cdr")
        return result, leg

    async def _unanswered(self, uri: str, caller_id: str, called: str, campaign: str | None, start: float,
                          outcome: str, cause: str) -> None:
        end = time.time()
        rec = CallRecord(new_id(), "outbound", caller_id, called, start, end=end, campaign=campaign,
                         outcome=outcome, hangup_side="caller", hangup_cause=cause, worker_id=self.cfg.worker_id)
        await self._cdr_call(rec)
        await self._cdr_leg(LegRecord(new_id(), rec.call_id, "outbound", uri, None, start, None, end, None,
                                      outcome))

    async def _finish(self, leg: Leg, rec: CallRecord, uri: str) -> None:
        try:
            info = await leg.wait_ended()
        finally:
            self.records.pop(leg.id, None)
            self.uris.pop(leg.id, None)
            self.worker.queues.records.pop(leg.id, None)
        rec.end = time.time()
        if rec.hangup_side is None:
            rec.hangup_side = "caller" if info.side is HangupSide.CALLER else "system"
            rec.hangup_cause = f"{info.sip_code} {info.reason}".strip()
        rec.outcome = rec.outcome or "ivr_only"
        # Leg first: a reader that sees the call ended also finds its leg.
        await self._cdr_leg(LegRecord(leg.id, leg.id, "outbound", uri, None, rec.start, rec.answer, rec.end,
                                      info.sip_code, "answered"))
        await self._cdr_call(rec)

    # -- engine callbacks ----------------------------------------------------------------------

    async def connect_agent(self, leg: Leg, req: DialRequest, campaign: Campaign) -> bool:
        """Queue the customer for ``campaign.queue``; True as soon as the router reserved an agent."""
        rec = self.records.get(leg.id)
        qreq = QueueRequest(queue=campaign.queue or "", skills={}, priority=OUTBOUND_PRIORITY, max_wait=60.0,
                            callback_offer=False, callback_after=0.0, announce_position=False,
                            announce_wait_time=False, announce_every=3600.0, music=str(self.music),
                            language=str(req.data.get("language") or "vi"), sounds_dir=str(self.cfg.sounds),
                            variables=req.variables())
        task = self.tasks.spawn(self._queued(leg, qreq, rec, req), "outbound queue")
        deadline = time.monotonic() + AGENT_RESERVE_WAIT
        while time.monotonic() < deadline and not task.done():
            w = self.worker.queues.waiting.get(leg.id)
            if w is not None and (w.offer is not None or w.agent_leg is not None):
                if w.offer is not None:     # the agent's screen may now read and dispose this contact
                    await assignment.assign(self.redis, DialerKeys(self.cfg.redis.prefix), req.campaign_id,
                                            req.e164, w.offer.agent_id)
                return True
            await asyncio.sleep(0.05)
        task.cancel()   # QueueService takes the cancelled call out of the ACD
        with contextlib.suppress(BaseException):
            await task
        if rec is not None:
            rec.outcome = "abandoned"
            rec.hangup_side = "system"
            rec.hangup_cause = "no agent within grace"
        return False

    async def _queued(self, leg: Leg, qreq: QueueRequest, rec: CallRecord | None, req: DialRequest) -> None:
        try:
            outcome = await self.worker.queues.queue(leg, qreq)
            if rec is not None and outcome is not QueueOutcome.CONNECTED and rec.outcome is None:
                rec.outcome = "timeout" if outcome is QueueOutcome.TIMEOUT else "failed"
            if rec is not None and outcome is QueueOutcome.CONNECTED and rec.agent_id:
                # the agent who talked (another may have been offered first) writes the disposition
                await assignment.assign(self.redis, DialerKeys(self.cfg.redis.prefix), req.campaign_id,
                                        req.e164, rec.agent_id)
        except CallGone:
            return
        await _hangup(leg)

    async def run_ivr(self, leg: Leg, flow: str, variables: dict[str, str]) -> dict[str, Any] | None:
        """Run the campaign's flow; its events become the contact's disposition."""
        rec = self.records.get(leg.id)
        events: list[tuple[str, dict[str, Any]]] = []
        token = _CALL_EVENTS.set(events)
        # The customer is the flow's "caller": lookups and dnc nodes default to {caller}.
        vars_ = {**variables, "caller": variables.get("phone", "")}
        try:
            # we dialed this customer's number ourselves: verified by construction (dnc nodes may add it)
            result = await self.ivr.run(leg, entry=flow, variables=vars_, caller_verified=True)
        finally:
            _CALL_EVENTS.reset(token)
        if rec is not None:
            for name, value in result.cdr_fields().items():
                setattr(rec, name, value)
        disp = disposition_from_events(events, time.time())
        if rec is not None:
            rec.disposition = disp["disposition"] if disp else "completed"
            if rec.end is not None:
                # The flow's hangup node ended the leg first: the final record went out without these.
                await self._cdr_call(rec)
        return disp

    async def amd(self, leg: Leg) -> bool:
        """Record the first seconds after answer and classify them; ``unknown`` counts as a person."""
        path = self.amd_dir / f"{leg.id}.wav"
        try:
            await leg.record(str(path), max_seconds=AMD_SECONDS)
            verdict = await asyncio.to_thread(_classify_wav, path)
        except (TelephonyError, OSError, wave.Error, EOFError) as exc:
            log.warning("amd failed, treating as a person", call_id=leg.id, error=str(exc))
            return False
        finally:
            with contextlib.suppress(OSError):
                path.unlink()
        log.info("amd", call_id=leg.id, verdict=verdict)
        if verdict == "machine":
            rec = self.records.get(leg.id)
            if rec is not None:
                rec.outcome = "voicemail"
            return True
        return False

    async def free_agents(self, queue: str) -> int:
        """Read now, not cached: an agent reserved a moment ago must not count as free."""
        return int(await self.redis.zcard(self.rkeys.free(queue)))

    async def busy_agents(self, queue: str) -> int:
        """Members of the queue reserved, on a call or in wrap-up (predictive pacing's 'busy')."""
        members = [_str(m) for m in await self.redis.smembers(self.rkeys.members(queue))]
        if not members:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for a in members:
            pipe.hget(self.rkeys.agent(a), "state")
        states = await pipe.execute()
        return sum(1 for st in states if st is not None and _str(st) in BUSY_STATES)

    async def add_dnc(self, number: str, scope: str) -> None:
        """The DNC writer for IVR ``dnc`` nodes (outbound and inbound): global or one campaign."""
        camp = self.campaigns.get(scope)
        region = camp.region if camp else "VN"
        try:
            e164 = phone.normalize(number, region)
        except ValueError:
            log.warning("dnc: not a phone number", number=number)
            return
        await self.compliance.add_dnc(e164, camp.id if camp else None)

    # -- preview mode ------------------------------------------------------------------------

    def _preview_campaign(self, cid: str) -> Campaign:
        c = self.campaigns.get(cid)
        if c is None:
            raise KeyError(cid)
        if c.dial_mode != "preview":
            raise ValueError(f"campaign {cid} dials in {c.dial_mode} mode, not preview")
        return c

    def held_by(self, agent: str) -> DialRequest | None:
        for req, owner, _exp in self.previews.values():
            if owner == agent:
                return req
        return None

    async def preview_take(self, cid: str, agent: str) -> DialRequest | None:
        """The agent's next record, leased to this dialer and held for the agent. An agent holds one
        record at a time: asking again returns the same one. None: nothing due (or not running)."""
        self._preview_campaign(cid)
        held = self.held_by(agent)
        if held is not None:
            return held
        if not await self._running(cid):
            return None
        assert self.engine is not None
        req = await self.engine.preview_next(cid)
        if req is not None:
            self.previews[(cid, req.e164)] = (req, agent, time.time() + PREVIEW_HOLD)
            await assignment.assign(self.redis, DialerKeys(self.cfg.redis.prefix), cid, req.e164, agent)
        return req

    async def _running(self, cid: str) -> bool:
        return await self.redis.hget(DialerKeys(self.cfg.redis.prefix).campaign_state(cid), "state") in (
            b"running", "running")

    def _pop_preview(self, cid: str, e164: str, agent: str) -> DialRequest:
        held = self.previews.get((cid, e164))
        if held is None or held[1] != agent:
            raise LookupError("that record is not held by this agent (taken, dialed or expired)")
        del self.previews[(cid, e164)]
        return held[0]

    async def preview_skip(self, cid: str, e164: str, agent: str) -> None:
        self._preview_campaign(cid)
        req = self._pop_preview(cid, e164, agent)
        assert self.engine is not None
        await self.engine.preview_skip(req)

    async def preview_dial(self, cid: str, e164: str, agent: str) -> None:
        """Start the call in the background: agent's phone first, then the customer, bridged."""
        self._preview_campaign(cid)
        uri = await self.redis.hget(self.rkeys.agent(agent), "uri")
        state = await self.redis.hget(self.rkeys.agent(agent), "state")
        if uri is None:
            raise LookupError(f"unknown agent {agent}")
        if state is None or _str(state) not in ("available", "paused"):
            raise ValueError(f"agent {agent} is {_str(state) if state else 'logged_out'}: cannot dial")
        held = self.previews.get((cid, e164))
        if held is None or held[1] != agent:
            raise LookupError("that record is not held by this agent (taken, dialed or expired)")
        if not await self._running(cid):
            # Pause/stop take effect at once for new dials; the record stays held until skipped or expired.
            raise ValueError(f"campaign {cid} is not running")
        req = self._pop_preview(cid, e164, agent)
        assert self.engine is not None
        reason = await self.engine.preview_recheck(req)
        if reason is not None:   # resolved by the engine (DNC: closed; window: rescheduled)
            why = "the number went on a do-not-call list" if reason == "dnc" else "the callee's calling window closed"
            raise ValueError(f"not dialed: {why} since it was previewed")
        self.tasks.spawn(self._preview_call(req, agent, _str(uri), _str(state)), "preview call")

    async def _preview_call(self, req: DialRequest, agent: str, agent_uri: str, prev_state: str) -> None:
        assert self.engine is not None
        engine = self.engine
        c = self.campaigns[req.campaign_id]
        # Paused for the ACD while on the preview call: no inbound offer may ring the same phone.
        if prev_state == "available":
            await self.router.agent_pause(agent, "outbound")
        try:
            try:
                res, agent_leg = await self.worker.switch.originate(
                    agent_uri, req.caller_id, PREVIEW_AGENT_RING,
                    headers={"X-CC-Campaign": c.id, "X-CC-Preview": phone.national(req.e164)})
            except Exception as exc:  # noqa: BLE001 - the agent's phone failing releases the record
                log.warning("preview: agent phone failed", agent=agent, error=str(exc))
                res, agent_leg = OriginateResult.FAILED, None
            if res is not OriginateResult.ANSWERED or agent_leg is None:
                log.info("preview: agent did not answer", agent=agent, result=res.value)
                await engine.preview_skip(req)
                return
            await self._preview_customer(engine, c, req, agent, agent_leg)
        finally:
            if prev_state == "available":
                with contextlib.suppress(Exception):
                    await self.router.agent_ready(agent)

    async def _preview_customer(self, engine: DialerEngine, c: Campaign, req: DialRequest, agent: str,
                                agent_leg: Leg) -> None:
        t0 = time.time()
        try:
            result, leg = await self.originate(req.uri, req.caller_id, req.ring_timeout,
                                               headers={"X-CC-Campaign": c.id, "X-CC-Attempt": str(req.attempt)})
        except Exception as exc:  # noqa: BLE001
            log.warning("preview: originate failed", campaign=c.id, number=req.e164, error=str(exc))
            result, leg = OriginateResult.FAILED, None
        if result is not OriginateResult.ANSWERED or leg is None:
            await engine.handle_result(req, FROM_ORIGINATE.get(result, "failed"), time.time())
            await _hangup(agent_leg)
            return
        now = time.time()
        engine.stats[c.id].pacing.dial_resolved(True, now - t0)
        await engine.ledger.record(c.id, now, abandoned=False)    # the agent was there: never abandoned
        await engine.handle_result(req, "answered_human", now)
        rec = self.records.get(leg.id)
        if rec is not None:
            rec.queue, rec.agent_id, rec.agent_answer, rec.wait_seconds = c.queue, agent, now, 0.0
            rec.outcome = "answered"
        try:
            await agent_leg.bridge(leg)
            ended = await _first_ended(leg, agent_leg)
        except (CallGone, TelephonyError):
            ended = leg if leg.ended else agent_leg
        if rec is not None:
            rec.talk_seconds = time.time() - now
            rec.hangup_side = "agent" if ended is agent_leg else "caller"
            if rec.end is not None:
                await self._cdr_call(rec)     # the customer hung up first: the final record went out already
        await _hangup(leg)
        await _hangup(agent_leg)

    async def sweep_previews(self, stop: asyncio.Event) -> None:
        """Records previewed but neither dialed nor skipped go back to the list."""
        while not stop.is_set():
            now = time.time()
            for key, (req, agent, expires) in list(self.previews.items()):
                if expires <= now and self.previews.pop(key, None) is not None:
                    log.info("preview expired", campaign=req.campaign_id, agent=agent)
                    with contextlib.suppress(Exception):
                        await self.engine.preview_skip(req)  # type: ignore[union-attr]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)

    async def release_previews(self) -> None:
        for key, (req, _agent, _exp) in list(self.previews.items()):
            self.previews.pop(key, None)
            with contextlib.suppress(Exception):
                await self.engine.preview_skip(req)  # type: ignore[union-attr]

    # -- background -------------------------------------------------------------------------

    async def _cdr_call(self, rec: CallRecord) -> None:
        try:
            await self.worker.cdr.call(rec)
        except Exception:  # the buffer keeps records while Redis is away
            log.exception("outbound call record not written", call_id=rec.call_id)

    async def _cdr_leg(self, rec: LegRecord) -> None:
        try:
            await self.worker.cdr.leg(rec)
        except Exception:
            log.exception("outbound leg record not written", call_id=rec.call_id)

    async def close(self, grace: float) -> None:
        """Let live calls' CDR watchers see their legs end (the worker drains calls), then cancel."""
        await self.tasks.drain(grace)
        for f in self.amd_dir.glob("*"):
            with contextlib.suppress(OSError):
                f.unlink()
        with contextlib.suppress(OSError):
            self.amd_dir.rmdir()


def _classify_wav(path: Path) -> str:
    """Classify a pjmedia recording. Its RIFF sizes are only fixed up when the recorder closes,
    so the chunks are walked by hand and the data chunk is read to the end of the file."""
    raw = path.read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise wave.Error(f"not a WAVE file ({len(raw)} bytes, starts {raw[:12]!r})")
    pos, rate, bits, channels = 12, 8000, 16, 1
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], int.from_bytes(raw[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            channels = int.from_bytes(raw[pos + 10:pos + 12], "little")
            rate = int.from_bytes(raw[pos + 12:pos + 16], "little")
            bits = int.from_bytes(raw[pos + 22:pos + 24], "little")
        elif cid == b"data":
            if bits != 16 or channels != 1:
                return "unknown"
            return classify_pcm16(raw[pos + 8:], rate).verdict
        pos += 8 + size + (size & 1)
    raise wave.Error("no data chunk")


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def _hangup(leg: Leg) -> None:
    with contextlib.suppress(TelephonyError, CallGone):
        await leg.hangup()


async def run_dialer(worker: Any, stop: asyncio.Event) -> None:
    """Run every campaign of ``worker.cfg.campaigns`` on this worker until ``stop`` is set.
    The campaigns were read and validated once at start (worker.validate)."""
    cfg = worker.cfg
    campaigns = with_prompts(with_trunk(worker.campaigns, cfg.trunk), Path(cfg.sounds))
    bad = [c.id for c in campaigns.values() if c.ivr_flow and c.ivr_flow not in worker.scripts.scripts]
    bad += [c.id for c in campaigns.values() if c.machine_flow and c.machine_flow not in worker.scripts.scripts]
    if bad:
        log.error("dialer not started: campaign IVR flow missing", campaigns=bad)
        return
    redis = connect(worker.redis_url)
    out = Outbound(worker, redis, campaigns)
    if worker.queues.dnc is None:
        worker.queues.dnc = out.add_dnc   # inbound flows' "do not call me" reaches the dialer too
    # The engine dials through Outbound.originate: the worker's switch plus one CDR per attempt.
    engine = DialerEngine(redis, out, campaigns, out.connect_agent, out.run_ivr,  # type: ignore[arg-type]
                          cfg.redis.prefix, free_agents=out.free_agents, busy_agents=out.busy_agents, amd=out.amd,
                          dialer_id=f"{cfg.worker_id}-dialer", policy=worker.dial_policy)
    out.engine = engine
    worker.outbound = out
    sweeper = asyncio.ensure_future(out.sweep_previews(stop))
    try:
        await engine.run(stop)
    except Exception:
        log.exception("dialer failed")
    finally:
        worker.outbound = None
        sweeper.cancel()
        with contextlib.suppress(BaseException):
            await sweeper
        await out.release_previews()
        await out.close(cfg.drain_seconds + 2.0)
        await redis.aclose()


async def _first_ended(a: Leg, b: Leg) -> Leg:
    """Wait until either leg ends; returns the one that ended first."""
    ta, tb = asyncio.ensure_future(a.wait_ended()), asyncio.ensure_future(b.wait_ended())
    done, pending = await asyncio.wait({ta, tb}, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    return a if ta in done else b
