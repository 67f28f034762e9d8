"""Shared by the dialer's tests against a real Redis: a clock at a Tuesday 10:00 in Hanoi, campaigns
made from a few YAML lines, a campaign's list uploaded and running, pacing stats."""

import datetime as dt
from zoneinfo import ZoneInfo

from callcenter import yamlsrc
from callcenter.dialer.campaign import parse_campaign
from callcenter.dialer.control import CampaignControl
from callcenter.dialer.engine import CampaignStats
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.pacing import PacingStats
from callcenter.dialer.upload import import_list, parse_csv

VN = ZoneInfo("Asia/Ho_Chi_Minh")
TUE_10 = dt.datetime(2026, 11, 24, 10, 0, tzinfo=VN).timestamp()     # a Tuesday, 10:00 in Hanoi
PREFIX = "t:"


def camp(cid, ctype="telesales", mode="progressive", extra=""):
    answer = "ivr_flow: debt_reminder" if mode == "agentless" else "queue: sales"
    text = f"id: {cid}\ntype: {ctype}\ndial_mode: {mode}\n{answer}\ncaller_id: '02873001234'\n{extra}"
    return parse_campaign(*yamlsrc.loads(text, f"{cid}.yaml"))


def stats(c, in_flight=0):
    return CampaignStats(PacingStats(c.pacing.initial_answer_rate, c.pacing.expected_aht), in_flight=in_flight)


async def setup(r, c, csv_text, now=TUE_10 - 3600):
    keys = DialerKeys(PREFIX)
    await import_list(r, keys, c, parse_csv(csv_text.encode()), now=now)
    await CampaignControl(r, keys).set_state(c.id, "running")
    return keys
