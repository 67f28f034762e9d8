"""The one writer of the do-not-call requests flows make (an IVR ``dnc`` node, inbound or outbound).

The scope a flow names is the list the number goes on: "global" (or empty) for every campaign, a
campaign id for that campaign's list only (kept as named even when this worker's campaign files do not
define it: another worker's may). A scope that is one of this worker's campaigns reads the number in that
campaign's region; any other scope reads it as Vietnamese.

Numbers an operator adds through the API (``POST /dnc``) and a contact's "dnc" disposition go through
:class:`callcenter.dialer.compliance.Compliance` too; this adds only the reading of a flow's number.
"""

from __future__ import annotations

from collections.abc import Mapping

from callcenter import logs
from callcenter.dialer import phone
from callcenter.dialer.campaign import Campaign
from callcenter.dialer.compliance import Compliance

log = logs.get("calls.dnc")

DEFAULT_REGION = "VN"


class DncWriter:
    def __init__(self, compliance: Compliance, campaigns: Mapping[str, Campaign]) -> None:
        self.compliance = compliance
        self.campaigns = campaigns

    async def add(self, number: str, scope: str) -> None:
        campaign = self.campaigns.get(scope)
        try:
            e164 = phone.normalize(number, campaign.region if campaign else DEFAULT_REGION)
        except ValueError:
            log.warning("dnc: not a phone number", number=number)
            return
        await self.compliance.add_dnc(e164, None if scope in ("", "global") else scope)
