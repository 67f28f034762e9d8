"""Agent API: log in/out, ready, pause with reason, skills; live agent and queue state (wallboard).

    POST /agents/{id}/login   {"ready": true}        POST /agents/{id}/logout
    POST /agents/{id}/ready                           POST /agents/{id}/pause {"reason": "lunch"}
    PUT  /agents/{id}/skills  {"sales": 7, "vi": 10}
    GET  /agents   GET /agents/{id}   GET /queues   GET /queues/{name}   GET /wallboard
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import redis

from callcenter.api.http import HttpError, HttpRouter, Reply, Request
from callcenter.auth.roles import FLOOR_VIEW, SELF_AGENT, SUPERVISORS
from callcenter.routing import wallboard
from callcenter.routing.router import Router as RoutingRouter
from callcenter.routing.router import RoutingError
from callcenter.routing.rules import MAX_SKILLS, PAUSE_REASONS, skill_problem


def _body(req: Request) -> dict[str, Any]:
    body = req.json()
    if not isinstance(body, dict):
        raise HttpError(400, "request body must be a JSON object")
    return body


AgentEvent = Callable[[str, str, dict[str, Any]], Awaitable[None]]


def install_routes(router: HttpRouter, rt: RoutingRouter, sync_client: redis.Redis,
                   on_event: AgentEvent | None = None) -> None:
    """``sync_client`` (:func:`callcenter.redisconn.connect_sync`) serves the wallboard reads in a thread,
    shared with the metrics collector. ``on_event(event, agent_id, data)`` records the agent session in
    the queue log (AGENTLOGIN, AGENTLOGOFF, PAUSE, UNPAUSE): occupancy is computed from it."""

    async def act(agent_id: str, coro: Any, event: str | None = None, **data: Any) -> dict[str, Any]:
        try:
            state = await coro
        except RoutingError as exc:
            status = 404 if "unknown agent" in str(exc) else 409
            raise HttpError(status, str(exc)) from None
        if event and on_event is not None:
            await on_event(event, agent_id, {"result": state, **data})
        info = await rt.agent_info(agent_id)
        return {"agent": info, "result": state}

    async def login(req: Request) -> Reply:
        body = _body(req)
        ready = bool(body.get("ready", True))
        return await act(req.params["id"], rt.agent_login(req.params["id"], ready), "AGENTLOGIN", ready=ready)

    async def logout(req: Request) -> Reply:
        return await act(req.params["id"], rt.agent_logout(req.params["id"]), "AGENTLOGOFF")

    async def ready(req: Request) -> Reply:
        return await act(req.params["id"], rt.agent_ready(req.params["id"]), "UNPAUSE")

    async def pause(req: Request) -> Reply:
        reason = _body(req).get("reason", "break")
        if reason not in PAUSE_REASONS:
            raise HttpError(400, f"reason must be one of: {', '.join(PAUSE_REASONS)}")
        return await act(req.params["id"], rt.agent_pause(req.params["id"], reason), "PAUSE", reason=reason)

    async def skills(req: Request) -> Reply:
        body = _body(req)
        body = body.get("skills", body) if isinstance(body.get("skills"), dict) else body
        if len(body) > MAX_SKILLS:
            raise HttpError(400, f"skills: {len(body)} skills; at most {MAX_SKILLS}")
        for name, level in body.items():
            problem = skill_problem(name, level)
            if problem:
                raise HttpError(400, f"skills.{name[:40]}: {problem}")
        return await act(req.params["id"], rt.set_skills(req.params["id"], body))

    async def list_agents(req: Request) -> Reply:
        return {"agents": await rt.agents()}

    async def get_agent(req: Request) -> Reply:
        info = await rt.agent_info(req.params["id"])
        if info is None:
            raise HttpError(404, f"unknown agent {req.params['id']!r}")
        return info

    async def queues(req: Request) -> Reply:
        stats = await asyncio.to_thread(wallboard.queue_stats, sync_client, rt.prefix, rt.clock())
        return {"queues": [s.as_dict() for s in stats]}

    async def queue(req: Request) -> Reply:
        name = req.params["name"]
        stats = await asyncio.to_thread(wallboard.queue_stats, sync_client, rt.prefix, rt.clock())
        for s in stats:
            if s.queue == name:
                out = s.as_dict()
                out["estimated_wait_seconds"] = await rt.estimated_wait(name)
                return out
        raise HttpError(404, f"unknown queue {name!r}")

    async def board(req: Request) -> Reply:
        stats = await asyncio.to_thread(wallboard.queue_stats, sync_client, rt.prefix, rt.clock())
        states = await asyncio.to_thread(wallboard.agent_states, sync_client, rt.prefix)
        return {"queues": [s.as_dict() for s in stats], "agents_by_state": states}

    router.add("POST /agents/{id}/login", login, roles=SELF_AGENT, own="id")
    router.add("POST /agents/{id}/logout", logout, roles=SELF_AGENT, own="id")
    router.add("POST /agents/{id}/ready", ready, roles=SELF_AGENT, own="id")
    router.add("POST /agents/{id}/pause", pause, roles=SELF_AGENT, own="id")
    router.add("PUT /agents/{id}/skills", skills, roles=SUPERVISORS)
    router.add("GET /agents", list_agents, roles=SUPERVISORS)
    router.add("GET /agents/{id}", get_agent, roles=SELF_AGENT, own="id")
    router.add("GET /queues", queues, roles=FLOOR_VIEW)
    router.add("GET /queues/{name}", queue, roles=FLOOR_VIEW)
    router.add("GET /wallboard", board, roles=FLOOR_VIEW)

