"""Call recordings over HTTP.

``GET /recordings/{call_id}``: the call's stereo WAV (caller left, agent right; ``?take=2``, 3, ...: its next
recordings, a caller transferred back to a queue and answered by another agent: the CDR's ``recording_takes``
says how many), with HTTP range requests
for playback (one range: ``bytes=a-b``, ``bytes=a-``, ``bytes=-n``; 206 with Content-Range; a range
outside the file or one this server does not read is 416 with ``Content-Range: bytes */size``).
Supervisors and admins only (agents do not fetch recordings, not even of their own calls: a recording
is evidence, and an agent's own copy is a supervisor's decision); every fetch, range or not, is in the
audit log.

``POST /calls/{call_id}/recording/pause`` and ``.../resume``: mute and unmute a live recording (a caller
reading out a card number). An agent may do it on its own call only; supervisors and admins on any.
Resume starts an ``on_demand`` call's recording.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import BinaryIO

from callcenter.api.http import FileBody, HttpError, HttpRouter, Request, Response
from callcenter.auth.roles import ADMIN, SELF_AGENT, SUPERVISOR, SUPERVISORS
from callcenter.calls.recording import CALL_ID, Recordings
from callcenter.cdr.record import CallRecord
from callcenter.cdr.store import SqlStore, StoreUnavailable

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
MAX_TAKE = 99             # a call's recordings (?take=): one per agent that took the caller from a queue


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a one-range ``Range`` header, inclusive; None if it cannot be served."""
    m = _RANGE.match(header.strip())
    if not m or size <= 0:
        return None
    first, last = m.group(1), m.group(2)
    if first == "":
        if last == "" or int(last) == 0:
            return None
        return max(0, size - int(last)), size - 1          # the last n bytes
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or end < start:
        return None
    return start, end


def _open(path: Path) -> tuple[BinaryIO, int]:
    f = path.open("rb")
    try:
        return f, os.fstat(f.fileno()).st_size      # the size of what was opened (a purge may unlink the path)
    except OSError:
        f.close()
        raise


async def serve_wav(req: Request, path: Path, name: str) -> Response:
    """The WAV at ``path`` as ``name``.wav, whole or the one range the request asks for (also serves
    the voicemail inbox: api/voicemail.py). The file is opened off the loop and streamed in chunks as the
    client reads (an hour of stereo is ~115 MB: never read whole)."""
    f, size = await asyncio.to_thread(_open, path)
    headers = {"accept-ranges": "bytes", "content-disposition": f'inline; filename="{name}.wav"'}
    wanted = req.headers.get("range")
    got = (0, size - 1) if wanted is None else parse_range(wanted, size)
    if got is None:
        f.close()
        return Response(b"", 416, "audio/wav", {**headers, "content-range": f"bytes */{size}",
                                                "content-length": "0"})
    start, end = got
    length = end - start + 1
    if wanted is None:
        return Response(FileBody(f, 0, size), 200, "audio/wav", {**headers, "content-length": str(size)})
    return Response(FileBody(f, start, length), 206, "audio/wav",
                    {**headers, "content-range": f"bytes {start}-{end}/{size}", "content-length": str(length)})


async def held_by(store: SqlStore | None, call_id: str) -> CallRecord | None:
    """The CDR of a finished call, which names the worker whose disk holds its files (a recording, a voice
    message): a fetch elsewhere is forwarded there (api/forward.py). None when unknown or the store is down
    (the request is answered where it landed)."""
    if store is None:
        return None
    try:
        return await asyncio.to_thread(store.get_call, call_id)
    except StoreUnavailable:
        return None


def install_routes(router: HttpRouter, recordings: Recordings, store: SqlStore | None) -> None:
    """``store``: the CDR store, where a call's recording path is (None: it was down at boot, 503)."""

    async def fetch(req: Request) -> Response:
        call_id = req.params["call_id"]
        if not CALL_ID.match(call_id):
            raise HttpError(400, "not a call id")
        if store is None:
            raise HttpError(503, "CDR store unavailable")
        try:
            cdr = await asyncio.to_thread(store.get_call, call_id)
        except StoreUnavailable as exc:
            raise HttpError(503, f"CDR store unavailable: {exc}") from None
        take = req.arg("take", "1") or "1"
        if not take.isdigit() or not 1 <= int(take) <= MAX_TAKE:
            raise HttpError(400, f"take is a number from 1 to {MAX_TAKE}")
        if cdr is not None and 0 < cdr.recording_takes < int(take):     # counted by the CDR: no disk search
            raise HttpError(404, f"the call has {cdr.recording_takes} recording(s)")
        path = await asyncio.to_thread(recordings.find, call_id, cdr.recording if cdr is not None else None,
                                       int(take))
        if path is None:
            raise HttpError(404, "no recording of that call")
        return await serve_wav(req, path, call_id)

    async def stored_by(req: Request) -> str | None:
        """The worker whose disk holds a finished call's recording, the one its CDR names, when this one's
        does not (the fetch is forwarded there: api/forward.py); None: answered here."""
        call_id = req.params["call_id"]
        if not CALL_ID.match(call_id) or call_id in recordings.recent:
            return None
        cdr = await held_by(store, call_id)
        if cdr is None or not cdr.recording:
            return None
        here = await asyncio.to_thread(recordings.find, call_id, cdr.recording)
        return None if here is not None else cdr.worker_id

    def session_for(req: Request) -> str:
        call_id = req.params["call_id"]
        session = recordings.live.get(call_id)
        if session is None:
            raise HttpError(404, "no recorded call with that id on this worker")
        who = req.principal
        if who is not None and not who.roles & {SUPERVISOR, ADMIN} and who.agent != session.agent_id:
            raise HttpError(403, "an agent pauses only the recording of its own call")
        return call_id

    def state(call_id: str) -> dict[str, object]:
        s = recordings.live.get(call_id)
        return {"call_id": call_id, "recording": bool(s and s.recording), "paused": bool(s and s.paused),
                "failed": s.failed if s else None}

    async def pause(req: Request) -> dict[str, object]:
        call_id = session_for(req)
        recordings.pause(call_id)
        return state(call_id)

    async def resume(req: Request) -> dict[str, object]:
        call_id = session_for(req)
        recordings.resume(call_id)
        return state(call_id)

    router.add("GET /recordings/{call_id}", fetch, roles=SUPERVISORS, audit=True, locate=stored_by)
    router.add("POST /calls/{call_id}/recording/pause", pause, roles=SELF_AGENT)
    router.add("POST /calls/{call_id}/recording/resume", resume, roles=SELF_AGENT)
