"""The preview desk: an agent takes the next record of a preview campaign (:meth:`PreviewDesk.take`,
leased to this worker's dialer and held for that agent), then dials it (:meth:`PreviewDesk.dial`: the
agent's phone rings first, then the customer's, and the two are bridged) or skips it. The campaign API's
preview routes are these three methods (``api.campaigns``).

A record held but neither dialed nor skipped goes back to the list after ``PREVIEW_HOLD``; the desk
closes (the API answers 503) when the dialer stops, and what it held goes back then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping

import redis.asyncio as aredis

from callcenter import logs
from callcenter.calls.outbound import OutboundCalls, back_to_acd, hangup
from callcenter.calls.outcome import attempt_outcome
from callcenter.dialer import assignment, phone
from callcenter.dialer.campaign import Campaign
from callcenter.dialer.control import CampaignControl
from callcenter.dialer.engine import DialerEngine, DialRequest
from callcenter.dialer.keys import DialerKeys
from callcenter.routing.router import Router
from callcenter.tasks import TaskSet
from callcenter.telephony.api import Leg, OriginateResult, Softswitch

log = logs.get("calls.preview")

PREVIEW_HOLD = 300.0         # a previewed record not dialed or skipped in 5 min goes back to the list
PREVIEW_AGENT_RING = 20.0


class PreviewDesk:
    def __init__(self, engine: DialerEngine, calls: OutboundCalls, switch: Softswitch, router: Router,
                 control: CampaignControl, campaigns: Mapping[str, Campaign], *, redis: aredis.Redis,
                 keys: DialerKeys) -> None:
        self.engine = engine
        self.calls = calls          # the customer's leg: dialed, recorded, written like every outbound call
        self.switch = switch        # the agent's leg: a phone of ours, no call record of its own
        self.router = router
        self.control = control
        self.campaigns = campaigns
        self.redis = redis          # contact assignment (dialer.assignment)
        self.keys = keys
        self.held: dict[tuple[str, str], tuple[DialRequest, str, float]] = {}   # (campaign, e164) -> req, agent, expiry
        self.open = True
        self.tasks = TaskSet()

    def _campaign(self, cid: str) -> Campaign:
        c = self.campaigns.get(cid)
        if c is None:
            raise KeyError(cid)
        if c.dial_mode != "preview":
            raise ValueError(f"campaign {cid} dials in {c.dial_mode} mode, not preview")
        return c

    def held_by(self, agent: str) -> DialRequest | None:
        for req, owner, _exp in self.held.values():
            if owner == agent:
                return req
        return None

    async def take(self, cid: str, agent: str) -> DialRequest | None:
        """The agent's next record, leased to this dialer and held for the agent. An agent holds one
        record at a time: asking again returns the same one. None: nothing due (or not running)."""
        self._campaign(cid)
        held = self.held_by(agent)
        if held is not None:
            return held
        if await self.control.state(cid) != "running":
            return None
        req = await self.engine.preview_next(cid)
        if req is not None:
            self.held[(cid, req.e164)] = (req, agent, time.time() + PREVIEW_HOLD)
            await assignment.assign(self.redis, self.keys, cid, req.e164, agent)
        return req

    def _pop(self, cid: str, e164: str, agent: str) -> DialRequest:
        held = self.held.get((cid, e164))
        if held is None or held[1] != agent:
            raise LookupError("that record is not held by this agent (taken, dialed or expired)")
        del self.held[(cid, e164)]
        return held[0]

    async def skip(self, cid: str, e164: str, agent: str) -> None:
        self._campaign(cid)
        await self.engine.preview_skip(self._pop(cid, e164, agent))

    async def dial(self, cid: str, e164: str, agent: str) -> None:
        """Start the call in the background: agent's phone first, then the customer, bridged."""
        self._campaign(cid)
        info = await self.router.agent_info(agent)
        if info is None or not info.get("uri"):
            raise LookupError(f"unknown agent {agent}")
        state = str(info.get("state") or "logged_out")
        if state not in ("available", "paused"):
            raise ValueError(f"agent {agent} is {state}: cannot dial")
        held = self.held.get((cid, e164))
        if held is None or held[1] != agent:
            raise LookupError("that record is not held by this agent (taken, dialed or expired)")
        if await self.control.state(cid) != "running":
            # Pause/stop take effect at once for new dials; the record stays held until skipped or expired.
            raise ValueError(f"campaign {cid} is not running")
        req = self._pop(cid, e164, agent)
        reason = await self.engine.preview_recheck(req)
        if reason is not None:   # resolved by the engine (DNC: closed; window: rescheduled)
            why = "the number went on a do-not-call list" if reason == "dnc" else "the callee's calling window closed"
            raise ValueError(f"not dialed: {why} since it was previewed")
        self.tasks.spawn(self._call(req, agent, str(info["uri"]), state), "preview call")

    async def _call(self, req: DialRequest, agent: str, agent_uri: str, prev_state: str) -> None:
        c = self.campaigns[req.campaign_id]
        # Paused for the ACD while on the preview call: no inbound offer may ring the same phone.
        if prev_state == "available":
            await self.router.agent_pause(agent, "outbound")
        try:
            try:
                res, agent_leg = await self.switch.originate(
                    agent_uri, req.caller_id, PREVIEW_AGENT_RING,
                    headers={"X-CC-Campaign": c.id, "X-CC-Preview": phone.national(req.e164)})
            except Exception as exc:  # noqa: BLE001 - the agent's phone failing releases the record
                log.warning("preview: agent phone failed", agent=agent, error=str(exc))
                res, agent_leg = OriginateResult.FAILED, None
            if res is not OriginateResult.ANSWERED or agent_leg is None:
                log.info("preview: agent did not answer", agent=agent, result=res.value)
                await self.engine.preview_skip(req)
                return
            await self._customer(c, req, agent, agent_leg)
        finally:
            # ready at once, no after-call work: the agent previews and dials its next record
            await back_to_acd(self.router, agent, prev_state, None, None)

    async def _customer(self, c: Campaign, req: DialRequest, agent: str, agent_leg: Leg) -> None:
        engine = self.engine
        t0 = time.time()
        try:
            result, leg = await self.calls.originate(req.uri, req.caller_id, req.ring_timeout,
                                                     headers={"X-CC-Campaign": c.id, "X-CC-Attempt": str(req.attempt)})
        except Exception as exc:  # noqa: BLE001 - a failed dial is an outcome for the contact
            log.warning("preview: originate failed", campaign=c.id, number=req.e164, error=str(exc))
            result, leg = OriginateResult.FAILED, None
        if result is not OriginateResult.ANSWERED or leg is None:
            await engine.handle_result(req, attempt_outcome(result), time.time())
            await hangup(agent_leg)
            return
        now = time.time()
        engine.stats[c.id].pacing.dial_resolved(True, now - t0)
        await engine.ledger.record(c.id, now, abandoned=False)    # the agent was there: never abandoned
        await engine.handle_result(req, "answered_human", now)
        rec = self.calls.live.records.get(leg.id)
        if rec is not None:
            rec.queue, rec.agent_id, rec.agent_answer, rec.wait_seconds = c.queue, agent, now, 0.0
            rec.outcome = "answered"
        await self.calls.talk(leg, agent_leg, rec, now)
        await hangup(agent_leg)

    async def run(self, stop: asyncio.Event) -> None:
        """Records previewed but neither dialed nor skipped go back to the list."""
        while not stop.is_set():
            now = time.time()
            for key, (req, agent, expires) in list(self.held.items()):
                if expires <= now and self.held.pop(key, None) is not None:
                    log.info("preview expired", campaign=req.campaign_id, agent=agent)
                    with contextlib.suppress(Exception):
                        await self.engine.preview_skip(req)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 5.0)

    async def close(self) -> None:
        """The dialer stops: no more previews, and what agents held goes back to the list."""
        self.open = False
        for key, (req, _agent, _exp) in list(self.held.items()):
            self.held.pop(key, None)
            with contextlib.suppress(Exception):
                await self.engine.preview_skip(req)
