"""The voicemail inbox over HTTP (calls/voicemail.py keeps the index).

    GET  /voicemails?queue=&state=&offset=&limit=   newest first; state new|handled (default: both);
                                                    limit <= 200, offset + limit <= 10000
    GET  /voicemails/{id}                           one message's metadata
    GET  /voicemails/{id}/audio                     its WAV, with HTTP range requests (api/recordings.py)
    POST /voicemails/{id}/handled                   marks it handled by the user (200 again: unchanged)
    POST /voicemails/{id}/callback {"queue": q}     a callback task for queue q to the caller's number
                                                    (calls/voicemail.py VoicemailCallbacks): 202 with the
                                                    message (callback_id = the task's call id, handled);
                                                    404 unknown queue, 409 already called back / a callback
                                                    pending for the number / queue full, 422 the dial
                                                    policy refuses the number

Supervisors and admins only. A supervisor user with a ``queues`` list (the one monitoring uses) sees the
voicemails of those queues only (another queue's message answers 404, as if absent); empty: all queues.
Agents do not read the inbox: a voice message is a customer's personal data, and who calls back is the
supervisor's decision. Every audio fetch (range or not) is in the audit log, beside every ``handled`` and
``callback``. A supervisor may queue a callback only to a queue it sees.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from callcenter.api.http import HttpError, HttpRouter, Reply, Request, Response
from callcenter.api.recordings import held_by, serve_wav
from callcenter.auth.roles import ADMIN, SUPERVISORS
from callcenter.auth.users import UserStore
from callcenter.calls.voicemail import (
    MAX_PAGE,
    MAX_WINDOW,
    STATES,
    CallbackRefused,
    Voicemail,
    VoicemailCallbacks,
    VoicemailIndex,
)
from callcenter.cdr.store import SqlStore

VM_ID = re.compile(r"^[0-9a-f]{1,40}$")
QUEUE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def install_routes(router: HttpRouter, index: VoicemailIndex, recordings_dir: Path,
                   users: UserStore | None, callbacks: VoicemailCallbacks | None = None,
                   store: SqlStore | None = None) -> None:
    """``users``: the API's user store (None with ``http.auth`` off: every queue is visible);
    ``callbacks``: what makes a callback of a message (None: no callback route); ``store``: the CDR store,
    naming the worker whose disk holds a message saved by another worker (None: answered here)."""
    base = recordings_dir.resolve()

    def on_disk(vm: Voicemail) -> Path | None:
        path = Path(vm.path).resolve()
        return path if path.is_relative_to(base) and path.is_file() else None

    async def scope(req: Request) -> frozenset[str] | None:
        """The queues the user may see; None: all."""
        who = req.principal
        if who is None or users is None or ADMIN in who.roles:
            return None
        user = await users.get(who.name)
        if user is None:
            raise HttpError(403, "no such user")
        return user.queues or None

    async def one(req: Request) -> Voicemail:
        vm_id = req.params["id"]
        if not VM_ID.match(vm_id):
            raise HttpError(400, "not a voicemail id")
        vm = await index.get(vm_id)
        allowed = await scope(req)
        if vm is None or allowed is not None and vm.queue not in allowed:
            raise HttpError(404, "no such voicemail")
        return vm

    def number(req: Request, name: str, default: int, top: int) -> int:
        raw = req.arg(name)
        if raw is None:
            return default
        if not raw.isdigit() or int(raw) > top:
            raise HttpError(400, f"{name}: a whole number up to {top}")
        return int(raw)

    async def listing(req: Request) -> dict[str, Any]:
        queue, state = req.arg("queue"), req.arg("state")
        if queue is not None and not QUEUE.match(queue):
            raise HttpError(400, "queue: letters, digits, _.- (at most 64)")
        if state is not None and state not in STATES:
            raise HttpError(400, f"state: one of {', '.join(STATES)}")
        offset, limit = number(req, "offset", 0, MAX_WINDOW), number(req, "limit", 50, MAX_PAGE)
        if offset + limit > MAX_WINDOW:
            raise HttpError(400, f"offset + limit may not pass {MAX_WINDOW}")
        allowed = await scope(req)
        queues = await index.queues() if allowed is None else set(allowed)
        if queue is not None:
            queues &= {queue}
        items = await index.list(sorted(queues), [state] if state else list(STATES), offset, limit)
        return {"voicemails": [v.as_dict() for v in items], "offset": offset, "limit": limit}

    async def show(req: Request) -> Reply:
        return (await one(req)).as_dict()

    async def audio(req: Request) -> Response:
        vm = await one(req)
        path = await asyncio.to_thread(on_disk, vm)
        if path is None:
            raise HttpError(404, "the message's audio is gone")
        return await serve_wav(req, path, f"voicemail-{vm.id}")

    async def saved_by(req: Request) -> str | None:
        """The worker whose disk holds the message, when this one's does not (its call's CDR names it)."""
        vm = await index.get(req.params["id"]) if VM_ID.match(req.params["id"]) else None
        if vm is None or await asyncio.to_thread(on_disk, vm) is not None:
            return None
        cdr = await held_by(store, vm.call_id)
        return cdr.worker_id if cdr is not None else None

    async def handled(req: Request) -> Reply:
        vm = await one(req)
        who = req.principal.name if req.principal is not None else "api"
        if await index.handled(vm, who) == "missing":
            raise HttpError(404, "no such voicemail")
        got = await index.get(vm.id)
        return got.as_dict() if got is not None else vm.as_dict()

    async def callback(req: Request) -> Reply:
        assert callbacks is not None
        body = req.json()
        queue = body.get("queue") if isinstance(body, dict) else None
        if not isinstance(queue, str) or not QUEUE.match(queue):
            raise HttpError(400, "queue: a queue name (letters, digits, _.-, at most 64)")
        vm = await one(req)
        allowed = await scope(req)
        if allowed is not None and queue not in allowed:
            raise HttpError(403, "a supervisor queues callbacks to its own queues only")
        who = req.principal.name if req.principal is not None else "api"
        try:
            done = await callbacks.call_back(vm, queue, who)
        except CallbackRefused as exc:
            raise HttpError(exc.status, exc.reason) from None
        return Response(done.as_dict(), 202)

    router.add("GET /voicemails", listing, roles=SUPERVISORS)
    router.add("GET /voicemails/{id}", show, roles=SUPERVISORS)
    router.add("GET /voicemails/{id}/audio", audio, roles=SUPERVISORS, audit=True, locate=saved_by)
    router.add("POST /voicemails/{id}/handled", handled, roles=SUPERVISORS)
    if callbacks is not None:
        router.add("POST /voicemails/{id}/callback", callback, roles=SUPERVISORS, max_body=1024)
