"""structlog JSON logging.

Every line is one JSON object. Context (call_id, queue, agent, campaign) is bound with
``structlog.contextvars`` or ``log.bind`` so it rides along every line of a call.

Every line passes the privacy filter last (``callcenter.privacy.redact``): phone numbers are masked
by pattern wherever they are (any value at any depth, the event text, exception messages and
formatted tracebacks, request paths), keeping the last 3 digits so an operator can still tell two
callers apart; secrets are replaced by ``***``. The same holds for lines that do not come from
structlog: stdlib ``logging`` (asyncio, redis-py), Twisted's log (the HTTP access log, unhandled
errors in Deferreds), warnings and uncaught exceptions are all rendered by the same processors.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, TextIO, cast

import structlog

from callcenter.privacy import PHONE_KEYS, SECRET_KEYS, mask_number, redact

__all__ = ["PHONE_KEYS", "SECRET_KEYS", "configure", "get", "mask_number", "scrub"]

_twisted_routed = False
_generation = 0     # configure() counts: a logger resolves structlog's configuration once per configure()


def scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The privacy filter as a structlog processor: after format_exc_info, before rendering."""
    for key, value in event.items():
        event[key] = redact(value, key)
    return event


def _processors() -> list[Any]:
    return [structlog.processors.format_exc_info, scrub, structlog.processors.JSONRenderer(ensure_ascii=False)]


class _Handler(logging.StreamHandler[TextIO]):
    """The root handler this module installs (so a second configure() replaces it)."""


def configure(level: str = "info", stream: Any = None) -> None:
    """Configure structlog, and route stdlib logging, Twisted's log, warnings and uncaught
    exceptions through the same JSON processors."""
    global _generation
    lvl = getattr(logging, level.upper(), logging.INFO)
    out = stream or sys.stdout
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level, timestamper,
                    *_processors()],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _generation += 1
    handler = _Handler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level,
                           structlog.stdlib.add_logger_name, timestamper],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_processors()]))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(lvl)
    logging.captureWarnings(True)
    _route_twisted()
    sys.excepthook = _uncaught
    threading.excepthook = lambda args: _uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def _route_twisted() -> None:
    """Twisted buffers its log events (the HTTP access log among them) until someone begins logging,
    and prints critical ones (unhandled errors in Deferreds) raw to stderr: send them all to stdlib
    logging, hence through the privacy filter. Once per process (Twisted refuses a second start)."""
    global _twisted_routed
    if _twisted_routed:
        return
    from twisted.logger import ILogObserver, STDLibLogObserver, globalLogBeginner

    # an ILogObserver implementer (zope.interface declarations are not visible to mypy)
    observer = cast(ILogObserver, STDLibLogObserver())
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    _twisted_routed = True


def _uncaught(kind: type[BaseException], value: BaseException | None, tb: TracebackType | None) -> None:
    if value is None or issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value or kind(), tb)
        return
    structlog.get_logger(component="process").critical("uncaught exception", exc_info=(kind, value, tb))


class _Logger:
    """What :func:`get` returns: structlog's bound logger, made at the first line after each configure() and
    kept. structlog's own lazy proxy makes a new one (logger factory, processors, bound context) for every
    line unless ``cache_logger_on_first_use``, which pins the first configuration for good (tests and the
    CLI configure again): 14.9 -> 12.9 us an info line, 2.3 -> 0.7 us a filtered-out debug line, on a quiet
    machine (bench/RESULTS.md, "Session 6")."""

    __slots__ = ("_bound", "_context", "_generation")

    def __init__(self, context: dict[str, Any]) -> None:
        self._context = context
        self._bound: structlog.typing.FilteringBoundLogger | None = None
        self._generation = -1

    def __getattr__(self, name: str) -> object:
        bound = self._bound
        if bound is None or self._generation != _generation:
            bound = self._bound = cast(structlog.typing.FilteringBoundLogger,
                                       structlog.get_logger(**self._context).bind())
            self._generation = _generation
        return getattr(bound, name)


def get(name: str, **context: Any) -> structlog.typing.FilteringBoundLogger:
    """A logger with a component name and bound context."""
    # configure() makes every logger a filtering bound logger (structlog types get_logger's result Any)
    return cast(structlog.typing.FilteringBoundLogger, _Logger({"component": name, **context}))
