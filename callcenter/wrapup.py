"""Wrap-up: the disposition codes an agent picks after a call, per queue and per campaign, and whether
the customer's issue was resolved (FCR counts "the agent marked it unresolved": docs/KPIS.md).

The ``wrapup`` section of callcenter.yaml::

    wrapup:
      default: {codes: [info, complaint, other], required: false}
      queues:
        support: {codes: [info, complaint, fault_reported, other], required: true}
      campaigns:
        renewals: {codes: [renewed, declined, call_back_later]}

A campaign's codes win over its queue's, a queue's over the default. ``required``: the agent must pick a
code to save the wrap-up. The HTTP side is ``api/wrapup.py``; the agent desktop shows the codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from callcenter.yamlsrc import Reader, shown

CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
MAX_CODES = 50
_KEYS = ("codes", "required")


@dataclass(frozen=True)
class WrapupCodes:
    codes: tuple[str, ...] = ()
    required: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"codes": list(self.codes), "required": self.required}


@dataclass(frozen=True)
class WrapupSettings:
    default: WrapupCodes = field(default_factory=WrapupCodes)
    queues: dict[str, WrapupCodes] = field(default_factory=dict)
    campaigns: dict[str, WrapupCodes] = field(default_factory=dict)

    def for_call(self, queue: str | None, campaign: str | None) -> WrapupCodes:
        return (self.campaigns.get(campaign or "") or self.queues.get(queue or "") or self.default)

    def as_dict(self) -> dict[str, Any]:
        return {"default": self.default.as_dict(), "queues": {k: v.as_dict() for k, v in self.queues.items()},
                "campaigns": {k: v.as_dict() for k, v in self.campaigns.items()}}


def _codes(r: Reader) -> WrapupCodes:
    r.refuse_unknown(_KEYS)
    raw = r.items("codes")
    if len(raw) > MAX_CODES:
        r.error("codes", f"at most {MAX_CODES} codes, got {len(raw)}")
    codes: list[str] = []
    for i, code in enumerate(raw[:MAX_CODES]):
        if not isinstance(code, str) or not CODE.match(code):
            r.error(f"codes[{i}]", f"expected a code of lower-case letters, digits, '_', '.' or '-' "
                                   f"(at most 40), got {shown(code)}")
        elif code in codes:
            r.error(f"codes[{i}]", f"{code!r} is listed twice")
        else:
            codes.append(code)
    required = r.flag("required", False)
    if required and not codes:
        r.error("required", "a required disposition needs codes to choose from")
    return WrapupCodes(tuple(codes), required)


def parse(top: Reader) -> WrapupSettings:
    """The ``wrapup`` section of the worker config (errors name file, key and line)."""
    w = top.section("wrapup", ("default", "queues", "campaigns"))
    return WrapupSettings(
        default=_codes(w.section("default")),
        queues={name: _codes(r) for name, r in w.section("queues").sections()},
        campaigns={name: _codes(r) for name, r in w.section("campaigns").sections()})
