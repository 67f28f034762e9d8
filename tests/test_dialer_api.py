"""Campaign HTTP handlers against a real Redis (handlers invoked through the HttpRouter's dispatcher)."""

import asyncio
import json

from dialer_helpers import TUE_10
from repo import REPO

from callcenter.api import campaigns as api
from callcenter.api.http import HttpRouter, Request
from callcenter.dialer.campaign import load_campaigns
from callcenter.dialer.upload import UploadLimits
from callcenter.redisconn import connect

CAMPAIGNS = load_campaigns(REPO / "campaigns")


async def call(router, method, path, body=b"", query=None):
    route, params = router.match(method, path)    # the handler itself: auth is tests/test_auth_*.py's
    return await router._run(route.handler, Request(method, path, params, query or {}, {}, body))


def test_campaign_api_flow(redis_url):
    async def go():
        r = connect(redis_url)
        router = HttpRouter()
        api.install_routes(router, r, CAMPAIGNS, "t:", UploadLimits(max_bytes=10_000), clock=lambda: TUE_10)
        out = {}
        out["list"] = await call(router, "GET", "/campaigns")
        out["start"] = await call(router, "POST", "/campaigns/telesales_demo/start")
        csv = "sdt;ho_ten;amount_due\n0912 345 678;Nguyễn A;100\n0912345678;dup;\nabc;x;1\n".encode()
        out["upload"] = await call(router, "POST", "/campaigns/telesales_demo/lists", csv)
        out["too_big"] = await call(router, "POST", "/campaigns/telesales_demo/lists", b"x" * 10_001)
        out["no_phone"] = await call(router, "POST", "/campaigns/telesales_demo/lists", b"a,b\n1,2\n")
        out["contact"] = await call(router, "GET", "/campaigns/telesales_demo/contacts/0912345678")
        out["dnc"] = await call(router, "POST", "/dnc", json.dumps({"number": "091.234.5678"}).encode())
        out["dnc_bad"] = await call(router, "POST", "/dnc", json.dumps({"number": "12"}).encode())
        out["undnc"] = await call(router, "DELETE", "/dnc/%2B84912345678")
        out["undnc_again"] = await call(router, "DELETE", "/dnc/0912345678")
        out["callback_bad"] = await call(router, "POST", "/campaigns/telesales_demo/contacts/0912345678/disposition",
                                         json.dumps({"disposition": "callback"}).encode())
        out["callback"] = await call(router, "POST", "/campaigns/telesales_demo/contacts/0912345678/disposition",
                                     json.dumps({"disposition": "callback", "at": TUE_10 + 600}).encode())
        out["stats"] = await call(router, "GET", "/campaigns/telesales_demo/stats")
        out["pause"] = await call(router, "POST", "/campaigns/telesales_demo/pause")
        out["missing"] = await call(router, "GET", "/campaigns/nope/stats")
        await r.aclose()
        return out

    out = asyncio.run(go())
    assert {c["id"] for c in out["list"].body["campaigns"]} == {"telesales_demo", "debt_reminder_demo"}
    assert out["start"].body == {"campaign": "telesales_demo", "state": "running"}
    up = out["upload"]
    assert up.status == 201 and up.body["accepted"] == 1 and up.body["rows"] == 3
    assert up.body["duplicates_in_file"] == [{"line": 3, "duplicate_of_line": 2}]
    assert up.body["rejected"] == [{"line": 4, "reason": "unexpected character 'a' in phone"}]
    assert out["too_big"].status == 413
    assert out["no_phone"].status == 400 and "no phone column" in out["no_phone"].body["error"]
    assert out["contact"].body["data"] == {"ho_ten": "Nguyễn A", "amount_due": "100"}
    assert out["dnc"].status == 201 and out["dnc"].body["number"] == "+84912345678"
    assert out["dnc_bad"].status == 400
    assert out["undnc"].body["dnc"] is False and out["undnc_again"].status == 404
    assert out["callback_bad"].status == 400
    assert out["callback"].body["state"] == "pending" and out["callback"].body["next_at"] == TUE_10 + 600
    assert out["stats"].body["pending"] == 1 and out["stats"].body["state"] == "running"
    assert out["pause"].body["state"] == "paused" and out["missing"].status == 404


def test_preview_routes_need_a_preview_campaign_and_a_running_dialer(redis_url):
    import dataclasses

    async def go():
        r = connect(redis_url)
        camps = dict(CAMPAIGNS)
        camps["pv"] = dataclasses.replace(CAMPAIGNS["telesales_demo"], id="pv", dial_mode="preview")
        router = HttpRouter()
        api.install_routes(router, r, camps, "t:", desk=None)
        out = {
            "not_preview": await call(router, "GET", "/campaigns/telesales_demo/preview", query={"agent": ["1001"]}),
            "no_dialer": await call(router, "GET", "/campaigns/pv/preview", query={"agent": ["1001"]}),
            "unknown": await call(router, "POST", "/campaigns/nope/preview/0912345678/dial"),
        }
        await r.aclose()
        return out

    out = asyncio.run(go())
    assert [out[k].status for k in ("not_preview", "no_dialer", "unknown")] == [409, 503, 404], out
