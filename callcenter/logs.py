"""structlog JSON logging.

Every line is one JSON object. Context (call_id, queue, agent, campaign) is bound with
``structlog.contextvars`` or ``log.bind`` so it rides along every line of a call.
Phone numbers are masked before they reach a log: an operator can still tell two
callers apart by the tail, but a log file is not a contact list.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Keys whose values are phone numbers or SIP URIs carrying them.
PHONE_KEYS = frozenset({"caller", "called", "number", "phone", "callee", "caller_id", "from_uri",
                        "to_uri", "uri", "contact", "destination", "msisdn"})
SECRET_KEYS = frozenset({"password", "secret", "token", "authorization", "api_key"})
_DIGITS = re.compile(r"\+?\d{6,}")


def mask_number(value: str) -> str:
    """Keep a prefix and the last 3 digits of each long digit run: +8490******567."""

    def _mask(m: re.Match[str]) -> str:
        s = m.group(0)
        plus = s.startswith("+")
        digits = s[1:] if plus else s
        keep_head = 4 if plus else 3
        masked = digits[:keep_head] + "*" * max(0, len(digits) - keep_head - 3) + digits[-3:]
        return ("+" if plus else "") + masked

    return _DIGITS.sub(_mask, value)


def _scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key in SECRET_KEYS:
            event[key] = "***"
        elif key in PHONE_KEYS and isinstance(event[key], str):
            event[key] = mask_number(event[key])
    return event


def configure(level: str = "info", stream: Any = None) -> None:
    """Configure structlog (and stdlib logging, used by Twisted and libraries) for JSON lines."""
    lvl = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=lvl, stream=stream or sys.stdout, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _scrub,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get(name: str, **context: Any) -> structlog.typing.FilteringBoundLogger:
    """A logger with a component name and bound context."""
    return structlog.get_logger(component=name, **context)
