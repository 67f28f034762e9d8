"""The IVR runner on scripted legs: the demo flows, retries, business hours, errors, and the
HTTP lookup against a real local HTTP server (timeouts and garbage take the fallback path)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from repo import REPO

from callcenter.ivr import expr
from callcenter.ivr.checker import load_scripts
from callcenter.ivr.model import ScriptSet
from callcenter.ivr.runner import IvrResult, IvrRunner
from callcenter.ivr.services import QueueOutcome, SimulatedServices
from callcenter.ivr.simulate import ScriptedLeg

SOUNDS = REPO / "sounds"
VN = dt.timezone(dt.timedelta(hours=7))


@pytest.fixture(scope="module")
def shipped() -> ScriptSet:
    return load_scripts(REPO / "ivr_scripts")


class _Crm(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        self.server.seen.append((url.path, q))  # type: ignore[attr-defined]
        if url.path == "/slow/api/customers":
            time.sleep(2.0)
        if url.path.startswith("/garbage"):
            body, ctype, status = b"<html>oops</html>", "text/html", 200
        elif url.path.startswith("/error"):
            body, ctype, status = b'{"error": "db down"}', "application/json", 500
        elif url.path.startswith("/empty"):
            body, ctype, status = b'{"unrelated": 1}', "application/json", 200
        elif url.path.endswith("/api/debts"):
            body = json.dumps({"customer": {"name": "Trần Thị Bình", "id": "C42"},
                               "debt": {"amount": 3450000, "due_date": "2026-12-01"}}).encode()
            ctype, status = "application/json", 200
        else:
            vip = q.get("phone", [""])[0].endswith("999")
            body = json.dumps({"name": "Lê Văn Cường", "id": 7, "vip": vip}).encode()
            ctype, status = "application/json; charset=utf-8", 200
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass   # the IVR gave up waiting and closed the socket

    do_POST = do_GET


@pytest.fixture(scope="module")
def crm() -> Iterator[tuple[str, list]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Crm)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def run(sset: ScriptSet, entry: str, inputs: list[str], *, caller: str = "0901234567",
        variables: dict | None = None, language: str | None = None,
        outcome: QueueOutcome = QueueOutcome.CONNECTED, now: dt.datetime | None = None,
        tmp: Path | None = None, barge_in: bool = True,
        verified: bool = False) -> tuple[IvrResult, ScriptedLeg, SimulatedServices]:
    leg = ScriptedLeg(inputs, caller=caller, barge_in=barge_in)
    leg.caller_verified = verified
    services = SimulatedServices(queue_outcome=outcome)
    runner = IvrRunner(sset, services, SOUNDS, clock=(lambda: now) if now else None,
                       recordings_dir=tmp)
    result = asyncio.run(runner.run(leg, entry, variables, language))
    return result, leg, services


def names(leg: ScriptedLeg) -> list[str]:
    """Played files as lang/name, e.g. 'vi/digits/1'."""
    return [str(Path(p).relative_to(SOUNDS.resolve()).with_suffix("")) for p in leg.played]


def test_hotline_sales_then_survey(shipped, crm, monkeypatch):
    monkeypatch.setenv("CRM_URL", crm[0])
    result, leg, services = run(shipped, "hotline", ["2", "1", "5", "4", "1"], caller="0901234999", verified=True)
    assert result.ivr_path == ("hotline.welcome>hotline.choose_language>hotline.crm>hotline.vip_check>"
                               "hotline.vip>hotline.hours>hotline.menu>hotline.sales>hotline.queue>hotline.csat>"
                               "csat_survey.intro>csat_survey.questions>csat_survey.thanks")
    assert result.language == "en" and result.outcome == "agent" and result.queue_outcome == "connected"
    req = services.queued[0]
    assert (req.queue, req.skills, req.priority, req.callback_offer) == ("sales", {"sales": 1}, 10, True)
    assert req.language == "en" and req.music.endswith("sounds/moh.wav")
    assert result.variables["name"] == "Lê Văn Cường" and result.variables["segment"] == "vip"
    assert req.variables["name"] == "Lê Văn Cường"         # the agent's screen pop
    assert result.survey == {"csat": 5, "agent": 4, "resolved": 1}
    assert ("survey", {"script": "csat_survey", "node": "questions",
                       "answers": {"csat": 5, "agent": 4, "resolved": 1}}) in services.events
    assert result.digits["hotline.menu"] == ["1"]
    assert "en/hotline/menu_main" in names(leg) and "vi/lang/press_1_vietnamese" in names(leg)
    assert all(Path(p).is_absolute() for p in leg.played)
    assert leg.ended


def test_hotline_menu_retries_then_default(shipped, monkeypatch):
    monkeypatch.setenv("CRM_URL", "http://127.0.0.1:1")     # CRM down: served as a regular caller
    result, leg, services = run(shipped, "hotline", ["1", "7", "", "#"], outcome=QueueOutcome.TIMEOUT)
    assert result.digits["hotline.menu"] == ["7", "", "#"]
    played = names(leg)
    # the third try: "#" cuts the no-input prompt short, so the menu is heard twice
    assert played.count("vi/hotline/menu_main") == 2
    assert "vi/system/invalid_option" in played and "vi/system/no_input" in played
    assert [Path(p).stem for p in leg.barged] == ["welcome", "press_1_vietnamese", "menu_main", "no_input"]
    assert services.queued[0].queue == "support"                 # the default after 3 misses
    # the queue timed out: voicemail offer, no answer, goodbye
    assert result.path[-3:] == ["hotline.queue", "hotline.busy", "hotline.goodbye"]
    assert result.errors and result.errors[0].startswith("hotline.crm:")


def test_hotline_repeat_option(shipped, monkeypatch):
    monkeypatch.setenv("CRM_URL", "http://127.0.0.1:1")
    result, leg, _ = run(shipped, "hotline", ["1", "9", "9", "2"])
    assert result.path.count("hotline.menu") == 3 and "hotline.support" in result.path


def test_hotline_closed_by_variable_and_env(shipped, monkeypatch, tmp_path):
    monkeypatch.setenv("CRM_URL", "http://127.0.0.1:1")
    result, leg, services = run(shipped, "hotline", ["1", "1", "hangup"], variables={"force_hours": "closed"},
                                tmp=tmp_path)
    assert "hotline.closed" in result.path and "hotline.voicemail" in result.path
    assert leg.recorded and result.variables["voicemail"] == leg.recorded[0]
    assert services.events[0][0] == "recording"
    monkeypatch.setenv("CALLCENTER_FORCE_HOURS", "closed")
    result, _, _ = run(shipped, "hotline", ["1", ""])
    assert result.path[-2:] == ["hotline.closed", "hotline.goodbye"] and result.outcome == "hangup"


CAL_FLOW = """\
start: hours
calendar: office
nodes:
  hours:
    type: branch
    cases:
      - {when: holiday, next: holiday}
      - {when: business_hours, next: open}
    default: closed
  open: {type: hangup, prompts: [open]}
  closed: {type: hangup, prompts: [closed]}
  holiday: {type: hangup, prompts: [holiday]}
"""
CALENDAR = """\
timezone: Asia/Ho_Chi_Minh
calendars:
  office:
    hours: {mon-fri: ["08:00-12:00", "13:00-17:30"], sat: "08:00-12:00"}
    holidays: [2026-09-02, {from: 2026-02-15, to: 2026-02-21, name: Tet}]
"""


@pytest.mark.parametrize("when, expected", [
    (dt.datetime(2026, 11, 23, 9, 0, tzinfo=VN), "open"),       # Monday morning
    (dt.datetime(2026, 11, 23, 12, 30, tzinfo=VN), "closed"),   # lunch break
    (dt.datetime(2026, 11, 23, 1, 30, tzinfo=dt.UTC), "open"),  # 08:30 in Hanoi
    (dt.datetime(2026, 11, 28, 11, 59, tzinfo=VN), "open"),     # Saturday
    (dt.datetime(2026, 11, 29, 10, 0, tzinfo=VN), "closed"),    # Sunday
    (dt.datetime(2026, 9, 2, 9, 0, tzinfo=VN), "holiday"),
    (dt.datetime(2026, 2, 18, 9, 0, tzinfo=VN), "holiday"),     # Tết
])
def test_business_hours_calendar(tmp_path, when, expected):
    d = tmp_path / "ivr"
    d.mkdir()
    (d / "flow.yaml").write_text(CAL_FLOW)
    (d / "calendar.yaml").write_text(CALENDAR)
    result, _, _ = run(load_scripts(d), "flow", [], now=when)
    assert result.path[-1] == f"flow.{expected}"


LOOKUP_FLOW = """\
start: crm
nodes:
  crm:
    type: lookup
    method: {method}
    url: "{url}"
    params: {{phone: "{{caller}}"}}
    timeout: 0.5
    result: {{customer_name: name, vip: vip}}
    next: found
    on_error: fallback
  found: {{type: play, prompts: [found], next: bye}}
  fallback: {{type: play, prompts: [fallback], next: bye}}
  bye: {{type: hangup, prompts: [bye]}}
"""


def lookup_flow(tmp_path: Path, url: str, method: str = "GET") -> ScriptSet:
    d = tmp_path / "ivr"
    d.mkdir(exist_ok=True)
    (d / "flow.yaml").write_text(LOOKUP_FLOW.format(url=url, method=method))
    return load_scripts(d)


def test_lookup_sets_variables(tmp_path, crm):
    result, _, _ = run(lookup_flow(tmp_path, crm[0] + "/api/customers"), "flow", [], caller="0912345999")
    assert result.path == ["flow.crm", "flow.found", "flow.bye"]
    assert result.variables["customer_name"] == "Lê Văn Cường" and result.variables["vip"] is True
    assert crm[1][-1] == ("/api/customers", {"phone": ["0912345999"]})
    result, _, _ = run(lookup_flow(tmp_path, crm[0] + "/api/customers", "POST"), "flow", [])
    assert result.path[1] == "flow.found"


@pytest.mark.parametrize("path", ["/slow/api/customers", "/garbage", "/error", "/empty"])
def test_lookup_failure_takes_fallback_and_call_goes_on(tmp_path, crm, path):
    t0 = time.monotonic()
    result, leg, _ = run(lookup_flow(tmp_path, crm[0] + path), "flow", [])
    elapsed = time.monotonic() - t0
    assert result.path == ["flow.crm", "flow.fallback", "flow.bye"]
    assert result.outcome == "hangup" and result.errors and "customer_name" not in result.variables
    assert names(leg) == ["vi/fallback", "vi/bye"]
    assert elapsed < 1.5, elapsed    # the 0.5 s hard timeout held even though the server sleeps 2 s


def test_lookup_connection_refused(tmp_path):
    result, _, _ = run(lookup_flow(tmp_path, "http://127.0.0.1:1/x"), "flow", [])
    assert result.path[1] == "flow.fallback"


def test_debt_reminder_from_crm_with_promise(shipped, crm, monkeypatch):
    monkeypatch.setenv("CRM_URL", crm[0])
    now = dt.datetime(2026, 11, 23, 10, 0, tzinfo=VN)
    # the caller listens to every prompt to the end (no barge-in) so the whole amount is heard
    result, leg, services = run(shipped, "debt_reminder", ["1", "31022026", "01122025", "05122026#"], now=now,
                                barge_in=False)
    played = names(leg)
    i = played.index("vi/debt/amount_is")
    # 3.450.000 đồng: "ba triệu bốn trăm năm mươi nghìn đồng"
    assert played[i + 1:i + 9] == ["vi/digits/3", "vi/digits/million", "vi/digits/4", "vi/digits/hundred",
                                   "vi/digits/5", "vi/digits/muoi", "vi/digits/thousand", "vi/currency/dong"]
    assert played.count("vi/debt/invalid_date") == 2          # 31/02 does not exist, 2025 is past
    assert result.variables["promise_date"] == "2026-12-05"
    assert ("promise_to_pay", {"date": "2026-12-05", "amount": 3450000}) in services.events
    assert result.outcome == "hangup" and result.errors == []


def test_debt_reminder_campaign_data_paid_and_agent(shipped):
    data = {"name": "An", "amount_due": "1250000", "due_date": "15/12/2026"}
    result, _, services = run(shipped, "debt_reminder", ["3"], variables=data)
    assert "debt_reminder.crm" not in result.path
    assert services.events == [("already_paid", {"amount": "1250000"})]
    result, _, services = run(shipped, "debt_reminder", ["2"], variables=data, outcome=QueueOutcome.NO_AGENTS)
    assert services.queued[0].skills == {"collections": 1}
    assert services.events[-1][0] == "agent_unavailable"


def test_debt_reminder_bad_amount_goes_to_agent(shipped):
    data = {"amount_due": "unknown", "due_date": "2026-12-15"}
    result, _, services = run(shipped, "debt_reminder", [], variables=data)
    assert "debt_reminder.agent" in result.path and services.queued
    assert "not a whole number" in result.errors[-1]


def test_telesales_dnc_and_interest(shipped):
    # telesales calls are numbers the dialer dialed: verified by construction
    result, _, services = run(shipped, "telesales", ["9"], caller="0987654321", verified=True)
    assert services.dnc == [("0987654321", "global")] and result.outcome == "hangup"
    result, _, services = run(shipped, "telesales", ["1"], outcome=QueueOutcome.CALLBACK_REQUESTED)
    assert services.events[0][0] == "interested" and result.outcome == "callback"


def test_failing_node_without_fallback_hangs_up_politely(tmp_path):
    d = tmp_path / "ivr"
    d.mkdir()
    (d / "flow.yaml").write_text(textwrap.dedent("""\
        start: amount
        nodes:
          amount: {type: say, say: currency, value: "{amount_due}", next: bye}
          bye: {type: hangup}
        """))
    result, leg, _ = run(load_scripts(d), "flow", [])
    assert result.outcome == "error" and "amount_due" in result.errors[0]
    assert names(leg) == ["vi/system/sorry_error"] and leg.ended


def test_caller_hangs_up(shipped, monkeypatch):
    monkeypatch.setenv("CRM_URL", "http://127.0.0.1:1")
    result, _, services = run(shipped, "hotline", ["1", "hangup"])
    assert result.outcome == "caller_hangup" and result.path[-1] == "hotline.menu" and not services.queued


def test_endless_flow_is_cut(tmp_path):
    d = tmp_path / "ivr"
    d.mkdir()
    (d / "flow.yaml").write_text("start: m\nnodes:\n  m: {type: menu, prompts: [x], options: {1: out}, "
                                 "default: m, attempts: 1}\n  out: {type: hangup}\n")
    result, _, _ = run(load_scripts(d), "flow", [])
    assert result.outcome == "error" and "step limit" in result.errors[-1]


@pytest.mark.parametrize("text, env, expected", [
    ("amount > 1000000", {"amount": "1500000"}, True),
    ("amount > 1000000", {"amount": "999"}, False),
    ("segment == 'vip' or priority >= 5", {"segment": "x", "priority": 5}, True),
    ("not vip and language == \"vi\"", {"vip": "false", "language": "vi"}, True),
    ("caller startswith '09' and caller not in ['0900000000']", {"caller": "0912"}, True),
    ("region in ['HN', 'HCM']", {"region": "DN"}, False),
    ("missing == null", {}, True),
    ("missing > 3", {}, False),
])
def test_conditions(text, env, expected):
    assert expr.parse(text).evaluate(env) is expected


@pytest.mark.parametrize("bad", ["a ==", "a = 1", "(a", "a b", "import os", "__import__('os')"])
def test_bad_conditions(bad):
    with pytest.raises(expr.ExprError):
        e = expr.parse(bad)
        if bad == "import os":   # identifiers are only ever variable names, never executed
            assert e.evaluate({}) is False
            raise expr.ExprError("ok")


def test_transfer_goto_node_and_language_timeout(tmp_path):
    d = tmp_path / "ivr"
    d.mkdir()
    (d / "a.yaml").write_text(textwrap.dedent("""\
        name: a
        languages: [vi, en]
        default_language: en
        start: lang
        nodes:
          lang: {type: language, prompts: [choose], options: {1: vi, 2: en}, default: vi, attempts: 1, next: jump}
          jump: {type: goto, script: b, node: xfer}
        """))
    (d / "b.yaml").write_text(textwrap.dedent("""\
        name: b
        start: intro
        nodes:
          intro: {type: play, prompts: [intro], next: xfer}
          xfer: {type: transfer, uri: "sip:{dept}@pbx.example.com", prompts: [transferring],
                 allow: ["sip:*@pbx.example.com"]}
        """))
    result, leg, _ = run(load_scripts(d), "a", [""], variables={"dept": "billing"})
    assert result.path == ["a.lang", "a.jump", "b.xfer"]
    assert result.language == "vi"          # timeout: the language node's default
    assert leg.transferred_to == "sip:billing@pbx.example.com" and result.outcome == "transferred"
    assert names(leg) == ["en/choose", "vi/transferring"]


def test_known_language_is_not_asked_again(shipped, monkeypatch):
    monkeypatch.setenv("CRM_URL", "http://127.0.0.1:1")
    result, leg, services = run(shipped, "hotline", ["2"], language="en")
    assert result.digits["hotline.menu"] == ["2"] and "hotline.choose_language" not in result.digits
    assert result.language == "en"
    assert "vi/lang/press_1_vietnamese" not in names(leg) and services.queued[0].queue == "support"
    result, _, _ = run(shipped, "hotline", ["1"], variables={"language": "en"})
    assert result.language == "en" and "hotline.sales" in result.path


def flow(tmp_path: Path, text: str) -> ScriptSet:
    d = tmp_path / "ivr"
    d.mkdir(exist_ok=True)
    (d / "flow.yaml").write_text(textwrap.dedent(text))
    return load_scripts(d)


def test_say_wording_options_from_yaml(tmp_path):
    """Southern "linh"/"tư" and "mùng" for early days, chosen per prompt in the flow."""
    sset = flow(tmp_path, """\
        name: flow
        start: a
        variables: {n: 105, d: "2026-12-05"}
        nodes:
          a:
            type: play
            prompts: [{say: number, value: "{n}", le: linh}, {say: date, value: "{d}", mung: true}]
            next: b
          b: {type: say, say: number, value: 24, tu: true}
        """)
    _, leg, _ = run(sset, "flow", [])
    played = names(leg)
    assert played[:4] == ["vi/digits/1", "vi/digits/hundred", "vi/digits/linh", "vi/digits/5"]
    assert played[4:7] == ["vi/date/day", "vi/date/mung", "vi/digits/5"]
    assert played[-3:] == ["vi/digits/2", "vi/digits/muoi", "vi/digits/tu"]
    _, plain, _ = run(flow(tmp_path, """\
        name: flow
        start: a
        nodes:
          a: {type: say, say: number, value: 105}
        """), "flow", [])
    assert names(plain) == ["vi/digits/1", "vi/digits/hundred", "vi/digits/le", "vi/digits/5"]


def test_scripted_leg_honours_barge_in(tmp_path):
    """The caller's next key cuts a barge-in prompt short and is then read by the menu;
    a prompt without barge-in is always heard to the end."""
    sset = flow(tmp_path, """\
        name: flow
        start: news
        nodes:
          news: {type: play, prompts: [hotline/welcome, hotline/menu_main], barge_in: true, next: notice}
          notice: {type: play, prompts: [queue/connecting, system/beep], next: menu}
          menu:
            type: menu
            prompts: [hotline/menu_main]
            options: {1: bye}
          bye: {type: hangup, prompts: [system/goodbye]}
        """)
    trace: list[tuple[str, str, dict]] = []
    leg = ScriptedLeg(["1"])
    runner = IvrRunner(sset, SimulatedServices(), SOUNDS, trace=lambda e, n, d: trace.append((e, n, d)))
    result = asyncio.run(runner.run(leg, "flow"))
    assert names(leg) == ["vi/hotline/welcome", "vi/queue/connecting", "vi/system/beep", "vi/hotline/menu_main",
                          "vi/system/goodbye"]
    assert [Path(p).stem for p in leg.barged] == ["welcome", "menu_main"]
    assert result.digits == {"flow.menu": ["1"]} and result.path[-1] == "flow.bye"
    assert [(n, d["digit"]) for e, n, d in trace if e == "barge_in"] == [("flow.news", "1"), ("flow.menu", "1")]
    # a timeout ("") or a hang-up does not interrupt anything
    leg = ScriptedLeg(["", "hangup"])
    asyncio.run(IvrRunner(sset, SimulatedServices(), SOUNDS).run(leg, "flow"))
    assert leg.barged == [] and names(leg).count("vi/hotline/menu_main") == 3 and leg.ended
