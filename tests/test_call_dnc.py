"""calls/dnc.py: the one writer of the do-not-call requests flows make, against a real Redis."""

from __future__ import annotations

import dataclasses
from typing import Any

from redis_helpers import run_with_redis
from repo import REPO

from callcenter.calls.dnc import DncWriter
from callcenter.dialer.campaign import load_campaigns
from callcenter.dialer.compliance import Compliance
from callcenter.dialer.keys import DialerKeys

KEYS = DialerKeys("t:")


def lists(redis_url: str, *requests: tuple[str, str]) -> dict[str, set[str]]:
    """Write each (number, scope) through one DncWriter; every DNC list's members afterwards."""
    campaigns = load_campaigns(REPO / "campaigns")
    campaigns["th"] = dataclasses.replace(campaigns["telesales_demo"], id="th", region="TH")

    async def body(r: Any) -> dict[str, set[str]]:
        writer = DncWriter(Compliance(r, KEYS), campaigns)
        for number, scope in requests:
            await writer.add(number, scope)
        out = {"global": set(await r.smembers(KEYS.dnc_global()))}
        for scope in ("telesales_demo", "th", "elsewhere"):
            out[scope] = set(await r.smembers(KEYS.dnc_campaign(scope)))
        return out

    return run_with_redis(redis_url, body)


def test_a_flow_request_goes_on_the_list_its_scope_names(redis_url: str) -> None:
    got = lists(redis_url, ("0912345678", "global"), ("0912345679", ""), ("0912345670", "telesales_demo"),
                ("0812345678", "th"), ("0912345671", "elsewhere"))
    assert got["global"] == {"+84912345678", "+84912345679"}
    assert got["telesales_demo"] == {"+84912345670"}
    # read in the campaign's region: a Thai national number is never misread as Vietnamese (without the
    # phonenumbers package a national number of another region is refused, not guessed)
    assert got["th"] <= {"+66812345678"} and "+84812345678" not in got["global"]
    assert got["elsewhere"] == {"+84912345671"}     # a campaign this worker does not run keeps its list


def test_what_is_not_a_phone_number_is_written_nowhere(redis_url: str) -> None:
    got = lists(redis_url, ("not a number", "global"), ("12", "telesales_demo"))
    assert not any(got.values()), got
