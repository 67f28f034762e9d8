"""The dial policy: normalisation, number classes, allow rules, campaign allowances, caps on a real
Redis, the `dialing` config section, and the IVR's uses of it (transfer allow-list, unverified callers
getting neither VIP priority nor a third party on the DNC list)."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest
from redis_helpers import run_with_redis
from repo import REPO

from callcenter import metrics, yamlsrc
from callcenter.config import load_config
from callcenter.dialer.campaign import parse_campaign
from callcenter.dialer.compliance import Compliance
from callcenter.dialer.control import CampaignControl
from callcenter.dialer.engine import DialerEngine
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.policy import DialPolicy, DialRules, classify, uri_allowed
from callcenter.dialer.upload import import_list, parse_csv
from callcenter.exceptions import ConfigError
from callcenter.ivr.checker import load_scripts
from callcenter.ivr.model import ScriptSet
from callcenter.ivr.runner import IvrRunner
from callcenter.ivr.services import SimulatedServices
from callcenter.ivr.simulate import ScriptedLeg

PREFIX = "t:"


@pytest.mark.parametrize(("raw", "e164", "kind"), [
    ("0912 345 678", "+84912345678", "mobile"),
    ("84912345678", "+84912345678", "mobile"),
    ("(+84) 91.234.5678", "+84912345678", "mobile"),
    ("01688123456", "+84388123456", "mobile"),          # 2018 renumbering
    ("024 3826 1234", "+842438261234", "landline"),
    ("1900 1234", "+8419001234", "premium"),
    ("+84 1900 123 456", "+841900123456", "premium"),
    ("8419001234", "+8419001234", "premium"),
    ("1800 1234", "+8418001234", "toll_free"),
    ("113", "+84113", "short_code"),
    ("1080", "+841080", "short_code"),
    ("+44 20 7946 0958", "+442079460958", "international"),
    ("0044 20 7946 0958", "+442079460958", "international"),
])
def test_numbers_are_normalised_and_classified(raw, e164, kind):
    d = classify(raw)
    assert (d.e164, d.kind) == (e164, kind)


def test_default_rules_refuse_premium_special_and_international():
    p = DialPolicy()
    assert p.judge("0912345678").ok and p.judge("02438261234").ok
    for raw, reason in (("19001234", "premium"), ("18001234", "toll_free"), ("113", "short_code"),
                        ("+442079460958", "international")):
        d = p.judge(raw)
        assert (d.ok, d.reason) == (False, reason), raw
    for raw in ("anonymous", "", "12", "0912", "+84 0912 345"):
        d = p.judge(raw)
        assert (d.ok, d.reason, d.e164) == (False, "invalid", None), raw
        assert d.detail


def test_allow_rules_prefixes_and_campaign_allowances():
    rules = DialRules(allowed_prefixes=("+4420",), denied_prefixes=("+84912",))
    p = DialPolicy(rules)
    assert p.judge("+442079460958").ok                          # allowed prefix, whatever its class
    assert p.judge("+441612345678").reason == "international"
    assert p.judge("0912345678").reason == "denied_prefix"      # denied wins over everything
    assert DialPolicy(DialRules(allow_premium=True)).judge("19001234").ok
    assert DialPolicy(DialRules(allow_international=True)).judge("+14155552671").ok
    c = parse_campaign(*yamlsrc.loads(textwrap.dedent("""\
        id: intl
        type: telesales
        queue: sales
        caller_id: '02873001234'
        dialing: {allow_international: true, allowed_prefixes: ["+8419001"]}
        """), "intl.yaml"))
    wide = p.campaign_rules(c)
    assert p.judge("+14155552671", wide).ok and p.judge("19001234", wide).ok
    assert p.judge("19009999", wide).reason == "premium"
    assert p.judge("0912345678", wide).reason == "denied_prefix"
    with pytest.raises(ConfigError, match="dialing.allowed_prefixes"):
        parse_campaign(*yamlsrc.loads("id: x\ntype: telesales\nqueue: q\ncaller_id: '0287'\n"
                                      "dialing: {allowed_prefixes: [0044]}\n", "x.yaml"))


def test_transfer_uri_patterns():
    assert uri_allowed("sip:billing@pbx.example.com", ["sip:*@pbx.example.com"])
    assert not uri_allowed("sip:billing@evil.example.com", ["sip:*@pbx.example.com"])
    assert not uri_allowed("sip:x@pbx.example.com.evil.net", ["sip:*@pbx.example.com"])




def refused(purpose: str, reason: str) -> float:
    return metrics.REGISTRY.get_sample_value("callcenter_dial_refused_total",
                                             {"purpose": purpose, "reason": reason}) or 0.0


def test_callback_caps_per_number_and_per_source_on_redis(redis_url):
    """3 callbacks a day to one number, 4 requests an hour from one source; refused ones count nothing,
    and two workers racing cannot pass a cap together."""
    rules = DialRules(callback_max_per_number=3, callback_max_per_source=4)
    before = refused("callback", "number_cap")

    async def body(r):
        p = DialPolicy(rules, r, DialerKeys(PREFIX), clock=lambda: 1_000_000.0)
        victim = await p.check("0912345678", "callback")
        got = [(await p.admit_callback(victim, "addr:10.0.0.1")).reason for _ in range(4)]
        other = await p.check("0987654321", "callback")
        src = [(await p.admit_callback(other, "addr:10.0.0.1")).reason for _ in range(2)]
        # another source, same victim: still capped per number
        third = (await p.admit_callback(victim, "addr:10.0.0.2")).reason
        # a new day: the number may be called back again
        tomorrow = DialPolicy(rules, r, DialerKeys(PREFIX), clock=lambda: 1_000_000.0 + 86400)
        next_day = (await tomorrow.admit_callback(victim, "addr:10.0.0.2")).reason
        # concurrency: 20 admits at once for a fresh number never pass the cap of 3
        fresh = await p.check("0977000111", "callback")
        race = await asyncio.gather(*(p.admit_callback(fresh, f"addr:r{i}") for i in range(20)))
        ttl = await r.ttl(DialerKeys(PREFIX).dial_cap_number(int(1_000_000 // 86400), "+84912345678"))
        return got, src, third, next_day, race, ttl

    got, src, third, next_day, race, ttl = run_with_redis(redis_url, body)
    assert got == ["", "", "", "number_cap"]
    assert src == ["", "source_cap"]        # 3 + 1 counted for 10.0.0.1: the 5th request is refused
    assert third == "number_cap" and next_day == ""
    assert sum(1 for d in race if d.ok) == 3
    assert 0 < ttl <= 2 * 86400
    assert refused("callback", "number_cap") >= before + 2


def test_check_refuses_numbers_on_the_global_dnc_list(redis_url):
    async def body(r):
        keys = DialerKeys(PREFIX)
        await Compliance(r, keys).add_dnc("+84912345678")
        p = DialPolicy(DialRules(), r, keys)
        return await p.check("0912 345 678", "callback"), await p.check("0912345679", "callback")

    dnc, ok = run_with_redis(redis_url, body)
    assert (dnc.ok, dnc.reason, dnc.e164) == (False, "dnc", "+84912345678") and ok.ok


def test_campaign_dial_of_a_refused_class_closes_the_contact_without_dialing(redis_url):
    """An international number in a list whose campaign does not allow it: the engine closes it as
    invalid before any INVITE (the engine has no softswitch here: a dial attempt would crash)."""
    def campaign(extra: str = ""):
        return parse_campaign(*yamlsrc.loads(f"id: pv\ntype: telesales\ndial_mode: preview\nqueue: sales\n"
                                             f"caller_id: '02873001234'\ntime_zone: UTC\n"
                                             f"compliance: {{calling_hours: ['00:00-23:59']}}\n{extra}", "pv.yaml"))

    async def body(r, c):
        await r.flushdb()
        keys = DialerKeys(PREFIX)
        await import_list(r, keys, c, parse_csv(b"phone\n+442079460958\n+33142345678\n"), now=0)
        await CampaignControl(r, keys).set_state(c.id, "running")
        engine = DialerEngine(r, None, {c.id: c}, None, None, PREFIX, dialer_id="d1")
        previewed = await engine.preview_next(c.id)          # the agent's preview: checked before the dial
        reason = await engine.preview_recheck(previewed)
        if reason is None:
            return None
        paced = await engine.preview_next(c.id)              # the pacing path: engine.dial checks it
        await engine.dial(paced)
        states = {n: await r.hget(keys.contact(c.id, n), "state") for n in (previewed.e164, paced.e164)}
        return reason, sorted(states.values()), await r.scard(keys.leases("d1"))

    assert run_with_redis(redis_url, lambda r: body(r, campaign())) == ("international", ["invalid", "invalid"], 0)
    assert run_with_redis(redis_url, lambda r: body(r, campaign("dialing: {allow_international: true}"))) is None


def test_dialing_config_section(tmp_path):
    base = (REPO / "callcenter.yaml").read_text()
    for name in ("ivr_scripts", "sounds", "routing_rules.yaml", "campaigns"):   # paths relative to the file
        (tmp_path / name).symlink_to(REPO / name)
    f = tmp_path / "cc.yaml"
    f.write_text(base)
    cfg = load_config(f)
    assert cfg.dialing == DialRules()        # the shipped file states the defaults
    f.write_text(base.replace("allowed_prefixes: []", 'allowed_prefixes: ["4420"]'))
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert "dialing.allowed_prefixes[0]" in str(err.value) and "cc.yaml:" in str(err.value)
    f.write_text(base.replace("transfer_allow: []", 'transfer_allow: ["http://x"]'))
    with pytest.raises(ConfigError, match="dialing.transfer_allow"):
        load_config(f)
    f.write_text(base.replace("callback_max_per_number: 3", "callback_max_per_number: -1"))
    with pytest.raises(ConfigError, match="dialing.callback_max_per_number"):
        load_config(f)


# ------------------------------------------------------------------ the IVR's uses

def flows(tmp_path: Path, text: str) -> ScriptSet:
    d = tmp_path / "ivr"
    d.mkdir(exist_ok=True)
    (d / "f.yaml").write_text(textwrap.dedent(text))
    return load_scripts(d)


def ivr(sset: ScriptSet, variables=None, verified=False, policy=None, trunk="", caller="0901234567"):
    leg = ScriptedLeg([], caller=caller)
    leg.caller_verified = verified
    services = SimulatedServices()
    runner = IvrRunner(sset, services, REPO / "sounds", dial_policy=policy, trunk=trunk)
    result = asyncio.run(runner.run(leg, "f", variables))
    return result, leg, services


def test_templated_transfer_needs_the_allow_list(tmp_path):
    sset = flows(tmp_path, """\
        name: f
        start: go
        nodes:
          go: {type: transfer, uri: "sip:{dept}@{host}", on_error: sorry}
          sorry: {type: hangup}
        """)
    result, leg, _ = ivr(sset, {"dept": "billing", "host": "evil.example.net"})
    assert leg.transferred_to is None and result.path == ["f.go", "f.sorry"]
    assert "allow-list" in result.errors[0]
    site = DialPolicy(DialRules(transfer_allow=("sip:*@pbx.example.com",)))
    result, leg, _ = ivr(sset, {"dept": "billing", "host": "pbx.example.com"}, policy=site)
    assert leg.transferred_to == "sip:billing@pbx.example.com" and result.outcome == "transferred"


def test_transfer_to_a_number_on_the_trunk_goes_through_the_dial_policy(tmp_path):
    sset = flows(tmp_path, """\
        name: f
        start: go
        nodes:
          go: {type: transfer, uri: "sip:{to}@10.0.0.9:5060", allow: ["sip:*@10.0.0.9:5060"], on_error: sorry}
          sorry: {type: hangup}
        """)
    result, leg, _ = ivr(sset, {"to": "19001234"}, trunk="10.0.0.9:5060")
    assert leg.transferred_to is None and "dial policy (premium)" in result.errors[0]
    result, leg, _ = ivr(sset, {"to": "0912345678"}, trunk="10.0.0.9:5060")
    assert leg.transferred_to == "sip:0912345678@10.0.0.9:5060"


CRM_FLOW = """\
    name: f
    start: crm
    nodes:
      crm: {type: lookup, url: "${DIAL_POLICY_CRM}/customers", params: {phone: "{caller}"}, result: {vip: vip},
            next: vip_check, on_error: q}
      vip_check:
        type: branch
        cases: [{when: "vip == true", next: vip}]
        default: q
      vip: {type: set, priority: 10, next: q}
      q: {type: queue, queue: support, next: bye}
      bye: {type: hangup}
    """


def test_unverified_caller_gets_no_vip_priority_from_the_crm(tmp_path, monkeypatch):
    import crm_stub

    with crm_stub.serve(lambda path, query: (200, b'{"vip": true, "name": "VIP"}', "application/json")) as url:
        sset = flows(tmp_path, CRM_FLOW)
        monkeypatch.setenv("DIAL_POLICY_CRM", url)
        spoofed, _, s1 = ivr(sset, verified=False)
        proven, _, s2 = ivr(sset, verified=True)
    # the flow still runs the VIP branch (the screen pop keeps the CRM's data), but the queue priority is 0
    assert "f.vip" in spoofed.path and s1.queued[0].priority == 0
    assert spoofed.variables["caller_verified"] is False
    assert s2.queued[0].priority == 10 and proven.variables["caller_verified"] is True


def test_unverified_caller_cannot_put_a_number_on_the_dnc_list(tmp_path):
    sset = flows(tmp_path, """\
        name: f
        start: dnc
        nodes:
          dnc: {type: dnc, scope: global, next: bye}
          bye: {type: hangup}
        """)
    _, _, spoofed = ivr(sset, verified=False, caller="0912000111")
    assert spoofed.dnc == []
    assert spoofed.events == [("dnc_request", {"scope": "global", "verified": False, "number": "0912000111"})]
    _, _, proven = ivr(sset, verified=True, caller="0912000111")
    assert proven.dnc == [("0912000111", "global")]


def test_checker_warns_about_a_templated_transfer_without_an_allow_list(tmp_path):
    from callcenter.ivr.checker import check

    d = tmp_path / "ivr"
    d.mkdir()
    (d / "f.yaml").write_text(textwrap.dedent("""\
        name: f
        start: go
        nodes:
          go: {type: transfer, uri: "sip:{dept}@pbx.example.com"}
          fixed: {type: transfer, uri: "sip:billing@pbx.example.com"}
          listed: {type: transfer, uri: "sip:{dept}@pbx.example.com", allow: ["sip:*@pbx.example.com"]}
          branch: {type: branch, cases: [{when: "caller_verified", next: go}], default: fixed}
        """))
    issues = [i for i in check(d) if "transfer" in i.message or "caller_verified" in i.message]
    assert [(i.node, i.severity) for i in issues] == [("go", "warning")]
