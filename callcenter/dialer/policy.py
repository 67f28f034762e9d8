"""The dial policy: the one gate every number the system dials goes through.

Callbacks, IVR transfers to the trunk, campaign and preview dials all ask :class:`DialPolicy`
before an INVITE leaves: the number is normalised with the dialer's E.164 rules
(:mod:`callcenter.dialer.phone`), classified (VN mobile, VN landline, premium 1900, toll-free
1800, short code, international), refused when its class is not allowed (premium, toll-free,
short codes and international are refused unless the site's ``dialing`` config or the campaign
allows them), refused when on the global DNC list, and, for callbacks (the one number a stranger
chooses: the From of an inbound call), capped per number per day and per source per hour in
Redis, atomically across workers. Every refusal is counted
(``callcenter_dial_refused_total{purpose,reason}``) and logged with the number masked.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from callcenter import logs
from callcenter.dialer import phone
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.scripts import script
from callcenter.metrics import DIAL_REFUSED_TOTAL

if TYPE_CHECKING:
    import redis.asyncio as aredis

    from callcenter.dialer.campaign import Campaign

log = logs.get("dial_policy")

CLASSES = ("mobile", "landline", "premium", "toll_free", "short_code", "international")
# Classes that cost the caller's victim or us money per minute (or reach a service, not a person).
SPECIAL = frozenset({"premium", "toll_free", "short_code"})
NUMBER_WINDOW = 86400.0      # per-number callback cap: one (UTC) day
SOURCE_WINDOW = 3600.0       # per-source callback cap: one hour

_SEPARATORS = re.compile(r"[\s.\-()/\u00a0]")
# Vietnamese service numbers (MIC numbering plan): 1900 xxxx(xx) premium-rate "information
# services" billed to the caller per minute, 1800 xxxx(xx) toll-free billed to the owner,
# and 3-5 digit short codes (113 police, 1080 information, ...).
_VN_SPECIAL = (("premium", re.compile(r"1900(?:\d{4}|\d{6})")), ("toll_free", re.compile(r"1800(?:\d{4}|\d{6})")),
               ("short_code", re.compile(r"1\d{2,4}")))


@dataclass(frozen=True)
class DialRules:
    """What may be dialed (the ``dialing`` section of callcenter.yaml; a campaign may widen the
    class rules for its own numbers)."""

    allow_international: bool = False
    allow_premium: bool = False                # premium 1900, toll-free 1800, short codes
    allowed_prefixes: tuple[str, ...] = ()     # E.164 prefixes allowed whatever their class
    denied_prefixes: tuple[str, ...] = ()      # never dialed, whatever allows them
    callback_max_per_number: int = 3           # callbacks to one number per day, site-wide (0 = no cap)
    callback_max_per_source: int = 100         # callbacks requested through one SIP source per hour (0 = no cap)
    transfer_allow: tuple[str, ...] = ()       # URI patterns (fnmatch) a templated IVR transfer may reach

    def widened(self, allow_international: bool | None = None, allow_premium: bool | None = None,
                allowed_prefixes: tuple[str, ...] = ()) -> DialRules:
        """These rules with a campaign's own allowances on top (denied prefixes still win)."""
        return replace(self,
                       allow_international=self.allow_international if allow_international is None
                       else allow_international,
                       allow_premium=self.allow_premium if allow_premium is None else allow_premium,
                       allowed_prefixes=self.allowed_prefixes + tuple(allowed_prefixes))


@dataclass(frozen=True)
class Destination:
    e164: str
    kind: str          # one of CLASSES


@dataclass(frozen=True)
class DialDecision:
    ok: bool
    e164: str | None = None
    kind: str | None = None
    reason: str = ""     # refusals: invalid, premium, toll_free, short_code, international, denied_prefix,
    detail: str = ""     # dnc, number_cap, source_cap; detail: operator words (why a number is invalid)


def classify(raw: object, region: str = "VN") -> Destination:
    """E.164 and class of a number as a person or a SIP From header wrote it; PhoneError if it is not one."""
    text = _SEPARATORS.sub("", str(raw or "")).lstrip("'")
    special = _vn_special(text) if region.upper() == "VN" or text.startswith(("+84", "0084")) else None
    if special is not None:
        return special
    e164 = phone.normalize(text, region)
    if e164.startswith("+84"):
        return Destination(e164, "mobile" if e164[3] in "35789" else "landline")
    return Destination(e164, "international")


def _vn_special(text: str) -> Destination | None:
    national = text
    for cc in ("+84", "0084", "84"):
        if text.startswith(cc):
            national = text[len(cc):]
            break
    if national.startswith("0"):
        national = national[1:]
    for kind, pattern in _VN_SPECIAL:
        if pattern.fullmatch(national):
            return Destination("+84" + national, kind)
    return None


def class_refusal(dest: Destination, rules: DialRules) -> str:
    """'' when the rules allow the destination, else the refusal reason."""
    if any(dest.e164.startswith(p) for p in rules.denied_prefixes):
        return "denied_prefix"
    if any(dest.e164.startswith(p) for p in rules.allowed_prefixes):
        return ""
    if dest.kind in SPECIAL and not rules.allow_premium:
        return dest.kind
    if dest.kind == "international" and not rules.allow_international:
        return "international"
    return ""


def uri_allowed(uri: str, patterns: tuple[str, ...] | list[str]) -> bool:
    """A rendered transfer URI against an allow-list of fnmatch patterns (``sip:*@pbx.example.com``)."""
    return any(fnmatch.fnmatchcase(uri, p) for p in patterns)


class DialPolicy:
    """Checks and counts dials. ``redis`` may be None (unit tests, ``ivr simulate``): no DNC, no caps."""

    def __init__(self, rules: DialRules | None = None, redis: aredis.Redis | None = None, keys: DialerKeys | None = None,
                 region: str = "VN", clock: Callable[[], float] = time.time) -> None:
        self.rules = rules or DialRules()
        self.redis = redis
        self.keys = keys or DialerKeys()
        self.region = region
        self.clock = clock

    def campaign_rules(self, campaign: Campaign) -> DialRules:
        """The site's rules widened by a campaign's own ``dialing`` allowances."""
        return self.rules.widened(campaign.allow_international, campaign.allow_premium, campaign.allowed_prefixes)

    def judge(self, raw: object, rules: DialRules | None = None, region: str | None = None) -> DialDecision:
        """Normalise, classify and apply the class rules (no Redis)."""
        try:
            dest = classify(raw, region or self.region)
        except phone.PhoneError as exc:
            return DialDecision(False, reason="invalid", detail=exc.reason)
        reason = class_refusal(dest, rules or self.rules)
        return DialDecision(not reason, dest.e164, dest.kind, reason)

    async def check(self, raw: object, purpose: str, *, rules: DialRules | None = None,
                    region: str | None = None, **context: Any) -> DialDecision:
        """``judge`` plus the global DNC list; a refusal is counted and logged."""
        d = self.judge(raw, rules, region)
        if d.ok and d.e164 is not None and self.redis is not None \
                and await self.redis.sismember(self.keys.dnc_global(), d.e164):
            d = replace(d, ok=False, reason="dnc")
        if not d.ok:
            self.refused(d, purpose, raw, **context)
        return d

    async def admit_callback(self, decision: DialDecision, source: str, **context: Any) -> DialDecision:
        """Count one callback against the per-number (day) and per-source (hour) caps, atomically;
        a refused one is not counted."""
        if not decision.ok or self.redis is None or decision.e164 is None:
            return decision
        r, now = self.rules, self.clock()
        got = await script(self.redis, "dial_caps")(
            keys=[self.keys.dial_cap_number(int(now // NUMBER_WINDOW), decision.e164),
                  self.keys.dial_cap_source(int(now // SOURCE_WINDOW), source or "unknown")],
            args=[r.callback_max_per_number, int(NUMBER_WINDOW * 2), r.callback_max_per_source,
                  int(SOURCE_WINDOW * 2)])
        reason: str = got
        if reason == "ok":
            return decision
        d = replace(decision, ok=False, reason=reason)
        self.refused(d, "callback", decision.e164, **context)
        return d

    @staticmethod
    def refused(d: DialDecision, purpose: str, raw: object, **context: Any) -> None:
        DIAL_REFUSED_TOTAL.labels(purpose=purpose, reason=d.reason).inc()
        log.warning("dial refused", purpose=purpose, reason=d.reason, kind=d.kind, detail=d.detail or None,
                    number=d.e164 or str(raw or ""), **context)
