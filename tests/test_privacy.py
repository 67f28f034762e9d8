"""The privacy filter on tricky strings, and every way a line reaches the log: structlog, stdlib
logging, Twisted's log, exceptions with tracebacks."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from pathlib import Path

import pytest

from callcenter import logs
from callcenter.privacy import mask_text, private_dir, private_file, redact, restrict_umask

NUMBER, E164 = "0912345678", "+84912345678"


@pytest.mark.parametrize(("text", "masked"), [
    ("DELETE /dnc/0912345678", "DELETE /dnc/*******678"),
    ("GET /campaigns/x/contacts/0912345678 HTTP/1.1", "GET /campaigns/x/contacts/*******678 HTTP/1.1"),
    ("sip:0912345678@10.0.0.7:5060", "sip:*******678@10.0.0.7:5060"),
    ("tel:+84912345678", "tel:+********678"),
    ("/dnc/%2B84912345678", "/dnc/%2B********678"),
    ("0912 345 678", "*******678"),
    ("+84 912 345 678", "+********678"),
    ("091-234-5678", "*******678"),
    ("(028) 3912 3456", "********456"),
    ("0912.345.678", "*******678"),
    ('{"phone": "0912345678", "n": 1}', '{"phone": "*******678", "n": 1}'),
    ("KeyError: '84912345678'", "KeyError: '********678'"),
    ("0912345678,0987654321", "*******678,*******321"),
    ("From: <sip:0912345678@1.2.3.4>;tag=123456789abc", "From: <sip:*******678@1.2.3.4>;tag=123456789abc"),
    ("callback-0912345678.wav", "callback-*******678.wav"),
    ("84.912.345.678", "********678"),                      # octets over 255: not an address
])
def test_numbers_are_masked_to_their_last_three_digits(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize("text", [
    "3f2a1b4c-1234-5678-9abc-123456789012",                  # uuid with all-digit segments
    "12345678-1234-1234-1234-123456789012",
    "5b0e6f4a91234567c1d2e3f4a5b6c7d8",                      # uuid4().hex: digits glued to letters
    "2026-11-30T05:27:42.123456Z", "2026-11-30 05:27:42", "2026-11-30T12:00:00+07:00",
    "127.0.0.1:5160", "192.168.100.200:5060", "[30/Nov/2026:05:27:42 +0000]",
    "1732950000.123456",                                    # a float
    "1732950000123456789",                                  # nanoseconds: longer than any number
    "1732950000123-0",                                      # Redis stream entry id
    "took 2500 ms, 200 17, m=audio 4000 RTP/AVP 8 0 101", "version 2.17.1", "hotline.menu>hotline.queue",
])
def test_look_alikes_survive(text: str) -> None:
    assert mask_text(text) == text


@pytest.mark.parametrize(("text", "masked"), [
    ("Authorization: Bearer abc.def", "Authorization: ***"),
    ("{'authorization': 'Basic dXNlcjpwdw=='}", "{'authorization': '***'}"),
    ("POST /login password=hunter2&user=ann", "POST /login password=***&user=ann"),
    ('{"token": "s3cr3t", "ok": true}', '{"token": "***", "ok": true}'),
    ("Cookie: session=abc; csrf=def", "Cookie: ***"),
    ("client_secret=xyz", "client_secret=***"),
])
def test_inline_secrets_lose_their_value(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_redact_walks_values_and_keeps_numeric_keys() -> None:
    event = {"event": f"dnc removed {NUMBER}", "caller": 84912345678, "port": 5060, "duration": 12.5,
             "sip_port": "5160", "wait_ms": 1234567, "call_id": "5b0e6f4a91234567c1d2e3f4a5b6c7d8",
             "headers": {"Authorization": "Bearer x", "X-Forwarded-For": "10.0.0.1"},
             "rows": [{"phone": NUMBER}, [E164]], "password": "hunter2", "csrf_token": "t",
             "path": Path(f"/var/lib/callcenter/{NUMBER}.wav"), "ok": True, "none": None}
    out = redact(event)
    assert out["event"] == "dnc removed *******678"
    assert out["caller"] == "********678"
    assert (out["port"], out["duration"], out["sip_port"], out["wait_ms"]) == (5060, 12.5, "5160", 1234567)
    assert out["call_id"] == event["call_id"]
    assert out["headers"] == {"Authorization": "***", "X-Forwarded-For": "10.0.0.1"}
    assert out["rows"] == [{"phone": "*******678"}, ["+********678"]]
    assert out["password"] == out["csrf_token"] == "***"
    assert out["path"] == "/var/lib/callcenter/*******678.wav"
    assert out["ok"] is True and out["none"] is None


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_every_route_into_the_log_is_masked() -> None:
    """structlog with a traceback, stdlib logging (asyncio, redis-py), and Twisted's log."""
    from twisted.logger import Logger

    buf = io.StringIO()
    logs.configure("info", stream=buf)
    try:
        log = logs.get("test", caller=NUMBER)
        try:
            {}[f"/campaigns/x/contacts/{NUMBER}"]
        except KeyError:
            log.exception("lookup failed", path=f"/dnc/{E164}")
        logging.getLogger("asyncio").error("task for %s failed", E164, exc_info=ValueError(f"bad {NUMBER}"))
        Logger(namespace="twisted.web").info('"DELETE /dnc/{n} HTTP/1.1" 204', n=NUMBER)
        try:
            raise RuntimeError(f"callback to {NUMBER} failed")
        except RuntimeError:
            Logger().failure("Unhandled error in Deferred:")
    finally:
        logs.configure("info")
    text = buf.getvalue()
    assert NUMBER not in text and E164 not in text and "912345678" not in text, text
    lines = _lines(buf)
    assert len(lines) == 4, text
    first, second, third, fourth = lines
    assert first["caller"] == "*******678" and first["path"] == "/dnc/+********678"
    assert "KeyError: '/campaigns/x/contacts/*******678'" in first["exception"]
    assert second["event"] == "task for +********678 failed" and "bad *******678" in second["exception"]
    assert third["event"] == '"DELETE /dnc/*******678 HTTP/1.1" 204' and third["level"] == "info"
    assert "callback to *******678 failed" in fourth["exception"]
    assert all(line["timestamp"].endswith("Z") for line in lines)


def test_a_logger_keeps_its_logger_and_follows_each_configure() -> None:
    """logs.get's logger is made once per configure() (not per line, as structlog's lazy proxy does): a
    logger made before configure writes where, at the level and through the filter of the latest one."""
    log = logs.get("test", caller=NUMBER)
    first, second = io.StringIO(), io.StringIO()
    try:
        logs.configure("info", stream=first)
        log.info("one", n=1)
        log.debug("hidden")
        logs.configure("debug", stream=second)
        log.debug("two", n=2)
        log.bind(k="v").info("three")
    finally:
        logs.configure("info")
    assert [(ln["event"], ln["caller"]) for ln in _lines(first)] == [("one", "*******678")]
    assert [ln["event"] for ln in _lines(second)] == ["two", "three"]
    assert _lines(second)[1]["k"] == "v" and _lines(second)[0]["level"] == "debug"


def test_private_modes_hold_under_a_wide_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        d = private_dir(tmp_path / "data" / "recordings")
        f = d / "x.wav"
        f.write_bytes(b"RIFF")
        private_file(f)
    finally:
        os.umask(old)
    assert stat.S_IMODE(d.stat().st_mode) == 0o750
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    previous = restrict_umask()
    try:
        assert os.umask(previous) == 0o027
    finally:
        os.umask(old)

