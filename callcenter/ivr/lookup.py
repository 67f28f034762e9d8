"""HTTP lookups from a flow (the CRM dip): small asyncio HTTP/1.1 client with a hard timeout.

Written on asyncio streams rather than a thread pool: a slow CRM during a call burst must
not exhaust threads that other calls need, and ``asyncio.wait_for`` cancels the socket
itself. Responses are capped (64 KiB) — a CRM answer is a handful of fields.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

MAX_BODY = 64 * 1024


class HttpLookupError(Exception):
    """The lookup failed: timeout, connection refused, HTTP error status, or not JSON."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def expand_env(url: str) -> str:
    """``${CRM_URL:-http://127.0.0.1:8089}/customers`` -> the configured URL."""

    def sub(m: re.Match[str]) -> str:
        return os.environ.get(m[1]) or (m[2] or "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}", sub, url)


async def _request(method: str, url: str, headers: dict[str, str], body: bytes | None) -> HttpResponse:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpLookupError(f"bad URL {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ctx = ssl.create_default_context() if parts.scheme == "https" else None
    reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=ctx)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close",
                 "Accept: application/json", "User-Agent: callcenter-ivr"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", status_line)
        if not m:
            raise HttpLookupError(f"not an HTTP response: {status_line[:40]!r}")
        hdrs = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            # read exactly the body: a server that ignores "Connection: close" must not hold us
            length = int(hdrs["content-length"])
            if length > MAX_BODY:
                raise HttpLookupError("response larger than 64 KiB")
            data = await reader.readexactly(length)
        else:
            data = b""
            while len(data) <= MAX_BODY:
                more = await reader.read(MAX_BODY + 1 - len(data))
                if not more:
                    break
                data += more
            if len(data) > MAX_BODY:
                raise HttpLookupError("response larger than 64 KiB")
            if hdrs.get("transfer-encoding", "").lower() == "chunked":
                data = _dechunk(data)
        return HttpResponse(int(m[1]), hdrs, data)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


def _dechunk(data: bytes) -> bytes:
    out, pos = b"", 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise HttpLookupError("truncated chunked body")
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return out
        out += data[end + 2:end + 2 + size]
        pos = end + 2 + size + 2


async def send(method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float) -> HttpResponse:
    """One request (a JSON body if any) with a hard timeout and its reply capped at 64 KiB (the CRM dip,
    webhooks: callcenter.events.webhooks). Raises HttpLookupError."""
    try:
        return await asyncio.wait_for(_request(method, url, headers, body), timeout)
    except TimeoutError:
        raise HttpLookupError(f"no answer within {timeout:g}s") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        raise HttpLookupError(f"{type(exc).__name__}: {exc}") from None


async def fetch_json(method: str, url: str, params: dict[str, str], headers: dict[str, str],
                     timeout: float) -> Any:
    """GET with params in the query string, POST with them as a JSON body. Raises HttpLookupError."""
    url = expand_env(url)
    body = None
    if method == "GET" and params:
        url += ("&" if "?" in url else "?") + urlencode(params)
    elif method == "POST":
        body = json.dumps(params).encode()
    resp = await send(method, url, headers, body, timeout)
    if not 200 <= resp.status < 300:
        raise HttpLookupError(f"HTTP {resp.status}")
    try:
        return json.loads(resp.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HttpLookupError("response is not JSON") from None


def pick(data: Any, path: str) -> Any:
    """``customer.amount_due`` or ``items[0].name`` out of a decoded JSON document; None if absent."""
    cur = data
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            idx = int(part[1:-1])
            cur = cur[idx] if isinstance(cur, list) and idx < len(cur) else None
        else:
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is None:
            return None
    return cur
