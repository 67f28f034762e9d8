"""Campaign API: lists, run state, stats, DNC and dispositions.

    GET    /campaigns                                   campaigns with their state
    GET    /campaigns/{id}/stats                        live statistics + abandonment ledger
    POST   /campaigns/{id}/start | pause | stop         takes effect for the next dial
    POST   /campaigns/{id}/lists[?region=VN]            body = CSV call list -> per-row report (201)
    GET    /campaigns/{id}/lists                        the uploaded lists: id, when, rows, accepted, ...
    POST   /campaigns/{id}/lists/{list_id}/reset | recycle   its contacts dialed again from the first attempt
                                                        (reset: all but DNC; recycle: those out of attempts)
    DELETE /campaigns/{id}/lists/{list_id}              its contacts and the list gone
                                                        -> {"changed", "leased"}: a contact being dialed is left
    GET    /campaigns/{id}/contacts/{number}            one contact (list columns) for the agent screen
    GET    /campaigns/{id}/results                      every contact's state and last outcome, CSV download
    POST   /campaigns/{id}/contacts/{number}/disposition
           {"disposition": "sale|promise_to_pay|callback|wrong_number|dnc|not_interested|completed|no_contact",
            "amount": ..., "date": ..., "at": epoch}
    GET    /campaigns/{id}/preview?agent=1001           preview mode: the agent's next record (held for
                                                        5 min; asking again returns the same); number null if none
    POST   /campaigns/{id}/preview/{number}/dial?agent=1001   ring the agent, then the customer (202)
    POST   /campaigns/{id}/preview/{number}/skip?agent=1001   put the record back (retried later)
    POST   /dnc        {"number": "0912 345 678", "campaign": "optional id"}
    POST   /dnc/lists[?campaign=id&region=VN]           body = CSV with a phone column (as a call list) -> 201
           {"rows", "added", "already", "rejected_count", "rejected": [{"line", "reason"}]}
    DELETE /dnc/{number}[?campaign=id]
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from callcenter.api.http import ChunksBody, HttpError, HttpRouter, Reply, Request, Response
from callcenter.auth.roles import CAMPAIGNS, DESK, SUPERVISOR
from callcenter.dialer import assignment, export, phone
from callcenter.dialer.campaign import Campaign
from callcenter.dialer.compliance import Compliance
from callcenter.dialer.control import CampaignControl
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.outcomes import OutcomeRecorder
from callcenter.dialer.upload import ParsedList, UploadError, UploadLimits, import_list, parse_csv

if TYPE_CHECKING:   # the worker's call layer and the dialer's engine: the API only holds what they give it
    from callcenter.calls.preview import PreviewDesk
    from callcenter.dialer.engine import DialRequest

DNC_ADD = CAMPAIGNS | {SUPERVISOR}
MAX_LIST_ID = 64


def install_routes(router: HttpRouter, redis: Any, campaigns: Mapping[str, Campaign], prefix: str = "cc:",
                   limits: UploadLimits | None = None, clock: Callable[[], float] = time.time,
                   desk: PreviewDesk | None = None) -> None:
    """``desk`` is the worker's preview desk (``calls.preview``; None when no dialer runs in this process):
    the preview routes answer 503 without it or once it closed (the dialer stopped)."""
    keys = DialerKeys(prefix)
    control = CampaignControl(redis, keys)
    compliance = Compliance(redis, keys)
    recorder = OutcomeRecorder(redis, keys)
    limits = limits or UploadLimits()

    def campaign(req: Request) -> Campaign:
        c = campaigns.get(req.params["id"])
        if c is None:
            raise HttpError(404, f"no campaign {req.params['id']!r}")
        return c

    def number(text: str, region: str = "VN") -> str:
        try:
            return phone.normalize(unquote(text), region)
        except phone.PhoneError as exc:
            raise HttpError(400, f"number: {exc.reason}") from None

    async def list_campaigns(req: Request) -> Reply:
        out = []
        for c in campaigns.values():
            out.append({"id": c.id, "name": c.name, "type": c.type, "dial_mode": c.dial_mode, "queue": c.queue,
                        "ivr_flow": c.ivr_flow, "compliance_preset": c.compliance.preset,
                        "state": await control.state(c.id)})
        return {"campaigns": out}

    async def stats(req: Request) -> Reply:
        return await control.stats(campaign(req), clock())

    def set_state(state: str) -> Callable[[Request], Any]:
        async def handler(req: Request) -> Reply:
            c = campaign(req)
            await control.set_state(c.id, state, clock())
            return {"campaign": c.id, "state": state}
        return handler

    async def parsed_upload(req: Request, region: str) -> ParsedList:
        if len(req.body) > limits.max_bytes:
            raise HttpError(413, f"list is {len(req.body)} bytes; the limit is {limits.max_bytes} bytes")
        # The list comes as the spooled upload (stream=True; the site capped it at max_bytes from the
        # headers): read, decoded and parsed in one thread, off the event loop, held in memory once.
        source = req.stream if req.stream is not None else req.body
        try:
            return await asyncio.to_thread(parse_csv, source, region.upper(), limits)
        except UploadError as exc:
            raise HttpError(400, str(exc)) from None
        except (OSError, ValueError):       # client gone (file closed), or undecodable UTF-16
            raise HttpError(400, "the upload could not be read as text") from None

    async def upload(req: Request) -> Reply:
        c = campaign(req)
        parsed = await parsed_upload(req, req.arg("region") or c.region)
        report = await import_list(redis, keys, c, parsed, clock())
        return Response(report.as_dict(), 201)

    async def lists(req: Request) -> Reply:
        c = campaign(req)
        found = await redis.hgetall(keys.lists(c.id))
        out = [{**json.loads(v), "list_id": k} for k, v in found.items()]
        return {"campaign": c.id, "lists": sorted(out, key=lambda d: d.get("uploaded_at") or 0)}

    def list_op(op: str) -> Callable[[Request], Any]:
        async def handler(req: Request) -> Reply:
            c, list_id = campaign(req), req.param("list_id", MAX_LIST_ID)
            try:
                return await export.change_list(redis, keys, c.id, list_id, op, clock())
            except KeyError:
                raise HttpError(404, f"no list {list_id!r} in campaign {c.id}") from None
        return handler

    async def results(req: Request) -> Reply:
        c = campaign(req)
        return Response(ChunksBody(export.results_csv(redis, keys, c.id)), content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{c.id}-results.csv"'})

    async def own_contact(req: Request, c: Campaign, e164: str) -> None:
        """An agent-only user reaches only the contacts assigned to its agent id (previewed by it or
        connected to it); supervisors' and managers' requests carry no such restriction."""
        only = getattr(req.principal, "only_agent", None)
        if only and await assignment.assigned_agent(redis, keys, c.id, e164) != only:
            raise HttpError(403, "this contact is not assigned to your agent")

    async def contact(req: Request) -> Reply:
        c = campaign(req)
        e164 = number(req.params["number"], c.region)
        await own_contact(req, c, e164)
        d: dict[str, Any] = await redis.hgetall(keys.contact(c.id, e164))
        if not d:
            raise HttpError(404, "no such contact in this campaign")
        d["data"] = json.loads(d.get("data") or "{}")
        d.pop("lease_owner", None)
        return d

    async def dispose(req: Request) -> Reply:
        c = campaign(req)
        e164 = number(req.params["number"], c.region)
        await own_contact(req, c, e164)
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("disposition"), str):
            raise HttpError(400, "body must be a JSON object with 'disposition'")
        details = {k: v for k, v in body.items() if k != "disposition"}
        try:
            d = await recorder.dispose(c, e164, body["disposition"], clock(), details)
        except KeyError:
            raise HttpError(404, "no such contact in this campaign") from None
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        return {"campaign": c.id, "state": d.state, "next_at": d.next_at, "dnc": d.add_dnc}

    async def add_dnc(req: Request) -> Reply:
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("number"), str):
            raise HttpError(400, "body must be a JSON object with 'number'")
        cid = body.get("campaign")
        if cid is not None and cid not in campaigns:
            raise HttpError(404, f"no campaign {cid!r}")
        e164 = number(body["number"], str(body.get("region", "VN")))
        await compliance.add_dnc(e164, cid)
        return Response({"number": e164, "campaign": cid, "dnc": True}, 201)

    async def upload_dnc(req: Request) -> Reply:
        cid = req.arg("campaign")
        if cid is not None and cid not in campaigns:
            raise HttpError(404, f"no campaign {cid!r}")
        parsed = await parsed_upload(req, req.arg("region") or "VN")      # checked as a call list is
        numbers = [c.e164 for c in parsed.contacts]
        added = await compliance.add_dnc_list(numbers, cid)
        return Response({"campaign": cid, "rows": parsed.rows, "added": added, "already": len(numbers) - added,
                         "rejected_count": len(parsed.rejected), "rejected": parsed.rejected}, 201)

    async def remove_dnc(req: Request) -> Reply:
        cid = req.arg("campaign")
        if cid is not None and cid not in campaigns:
            raise HttpError(404, f"no campaign {cid!r}")
        e164 = number(req.params["number"], req.arg("region", "VN") or "VN")
        if not await compliance.remove_dnc(e164, cid):
            raise HttpError(404, "number is not on that DNC list")
        return {"number": e164, "campaign": cid, "dnc": False}

    def at_desk(req: Request) -> tuple[PreviewDesk, Campaign, str]:
        c = campaign(req)
        if c.dial_mode != "preview":
            raise HttpError(409, f"campaign {c.id} dials in {c.dial_mode} mode, not preview")
        out = desk
        if out is None or not out.open:
            raise HttpError(503, "no dialer runs in this worker (start it with --dialer)")
        body = req.json() if req.body else {}
        agent = req.arg("agent") or (body.get("agent") if isinstance(body, dict) else None)
        if not isinstance(agent, str) or not agent:
            raise HttpError(400, "agent: required (?agent=ID)")
        return out, c, agent

    def record(c: Campaign, r: DialRequest, agent: str) -> dict[str, Any]:
        return {"campaign": c.id, "agent": agent, "number": r.e164, "national": phone.national(r.e164),
                "attempt": r.attempt, "data": dict(r.data)}

    async def preview(req: Request) -> Reply:
        out, c, agent = at_desk(req)
        r = await out.take(c.id, agent)
        if r is None:
            return {"campaign": c.id, "agent": agent, "number": None}
        return record(c, r, agent)

    def preview_action(action: str) -> Callable[[Request], Any]:
        async def handler(req: Request) -> Reply:
            out, c, agent = at_desk(req)
            e164 = number(req.params["number"], c.region)
            try:
                if action == "dial":
                    await out.dial(c.id, e164, agent)
                else:
                    await out.skip(c.id, e164, agent)
            except LookupError as exc:
                raise HttpError(404, str(exc.args[0] if exc.args else exc)) from None
            except ValueError as exc:
                raise HttpError(409, str(exc)) from None
            return Response({"campaign": c.id, "agent": agent, "number": e164, "action": action},
                            202 if action == "dial" else 200)
        return handler

    router.add("GET /campaigns/{id}/preview", preview, roles=DESK, own="agent", audit=True)
    router.add("POST /campaigns/{id}/preview/{number}/dial", preview_action("dial"), roles=DESK, own="agent")
    router.add("POST /campaigns/{id}/preview/{number}/skip", preview_action("skip"), roles=DESK, own="agent")
    router.add("GET /campaigns", list_campaigns, roles=CAMPAIGNS)
    router.add("GET /campaigns/{id}/stats", stats, roles=CAMPAIGNS)
    router.add("POST /campaigns/{id}/start", set_state("running"), roles=CAMPAIGNS)
    router.add("POST /campaigns/{id}/pause", set_state("paused"), roles=CAMPAIGNS)
    router.add("POST /campaigns/{id}/stop", set_state("stopped"), roles=CAMPAIGNS)
    router.add("POST /campaigns/{id}/lists", upload, roles=CAMPAIGNS, max_body=limits.max_bytes,
               stream=True)
    router.add("GET /campaigns/{id}/contacts/{number}", contact, roles=DESK, own="agent", audit=True)
    router.add("GET /campaigns/{id}/results", results, roles=CAMPAIGNS, audit=True)
    router.add("GET /campaigns/{id}/lists", lists, roles=CAMPAIGNS)
    router.add("POST /campaigns/{id}/lists/{list_id}/reset", list_op("reset"), roles=CAMPAIGNS)
    router.add("POST /campaigns/{id}/lists/{list_id}/recycle", list_op("recycle"), roles=CAMPAIGNS)
    router.add("DELETE /campaigns/{id}/lists/{list_id}", list_op("delete"), roles=CAMPAIGNS)
    router.add("POST /campaigns/{id}/contacts/{number}/disposition", dispose, roles=DESK, own="agent")
    # Adding to DNC is the safe direction (a customer asked a supervisor to stop calls); removing a
    # number is the one that exposes us to a regulator, so only those who own the lists may.
    router.add("POST /dnc", add_dnc, roles=DNC_ADD)
    router.add("POST /dnc/lists", upload_dnc, roles=CAMPAIGNS, max_body=limits.max_bytes, stream=True)
    router.add("DELETE /dnc/{number}", remove_dnc, roles=CAMPAIGNS)
