"""A Server-Sent Events client for tests and benches: one GET /events read on a thread, its messages kept.

    s = SseClient(port, token)             # connects; returns once the stream said it is open
    ev = s.wait_for(lambda e: e.type == "call.offered")
    s.close()
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Message:
    id: str
    type: str
    data: dict[str, Any]
    received: float            # time.time() when the client read it


class SseClient:
    def __init__(self, port: int, token: str, last_event_id: str | None = None, host: str = "127.0.0.1",
                 timeout: float = 10.0) -> None:
        self.messages: list[Message] = []
        self.comments = 0
        self.cond = threading.Condition()
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", "/events", headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.content_type = self.resp.getheader("content-type", "")
        self.closed = False
        if self.status != 200:
            self.body = self.resp.read()
            return
        self.conn.sock.settimeout(None)    # type: ignore[union-attr]  # a stream is quiet between events
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        with self.cond:
            if not self.cond.wait_for(lambda: self.comments > 0 or self.closed, timeout):
                raise AssertionError("the event stream did not open")

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            while True:
                line = self.resp.fp.readline()     # type: ignore[union-attr]
                if not line:
                    break
                text = line.decode().rstrip("\r\n")
                if text == "":
                    if "data" in fields:
                        msg = Message(fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"]),
                                      time.time())
                        with self.cond:
                            self.messages.append(msg)
                            self.cond.notify_all()
                    fields = {}
                elif text.startswith(":"):
                    with self.cond:
                        self.comments += 1
                        self.cond.notify_all()
                else:
                    name, _, value = text.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value
        except (OSError, ValueError):
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait_for(self, pred: Callable[[Message], bool], timeout: float = 20.0) -> Message:
        with self.cond:
            found: list[Message] = []

            def seen() -> bool:
                found[:] = [m for m in self.messages if pred(m)]
                return bool(found)

            if not self.cond.wait_for(seen, timeout):
                raise AssertionError(f"no such event in {[(m.type, m.data) for m in self.messages]}")
            return found[0]

    def types(self, call_id: str | None = None) -> list[str]:
        with self.cond:
            return [m.type for m in self.messages if call_id is None or m.data.get("call_id") == call_id]

    def close(self) -> None:
        try:
            self.conn.sock.shutdown(2)   # type: ignore[union-attr]
        except OSError:
            pass
        self.conn.close()
