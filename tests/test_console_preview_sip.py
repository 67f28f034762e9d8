"""Preview dialing from the agent desk in a real browser (tests/browser.py) against a worker running the dialer:
the agent takes its next record of a preview campaign (the list's columns shown), skips it, takes the next
and dials it: the agent's phone (sipp) rings first, then the customer behind the campaign's dial URI, and the
outbound CDR names the agent."""

from __future__ import annotations

import pytest
import sipp
from dialer_worker import campaign_yaml, cli, free_ports, outbound_rows, upload, wait_until
from worker_proc import api_user, demo_rules

from callcenter.auth.roles import AGENT

pytestmark = [pytest.mark.sip, pytest.mark.timeout(180)]

PASSWORD = "test password 1"      # worker_proc.api_user's


def test_preview_record_skip_and_dial_from_the_desk(dialer, redis_url: str, browser) -> None:
    w, ivr, campaigns, procs = dialer
    customer_port, agent_port = free_ports(2)
    (campaigns / "pv.yaml").write_text(campaign_yaml("t_pv", customer_port, ctype="telesales", mode="preview",
                                                     queue="sales", max_attempts=1, ring="5s"))
    upload(w.tmp, "t_pv", ["0914000001,An,0,", "0914000002,Binh,0,"], redis_url, campaigns)
    (w.tmp / "rules.yaml").write_text(demo_rules(agent_port).replace("wrapup: 10", "wrapup: 0"))
    w.write_config(rules=w.tmp / "rules.yaml", campaigns=campaigns, ivr_scripts=ivr)
    w.start()
    api_user(redis_url, "ana", [AGENT], agent="1001")
    w.login("1001")
    wait_until(lambda: w.http("GET", "/campaigns/t_pv/preview")[0] != 503, 10, "the dialer", w)
    cli("start", "t_pv", redis_url=redis_url, campaigns=campaigns)

    browser.expect(r"/console/agent/1001 .* 401")
    browser.login(f"http://127.0.0.1:{w.http_port}/console/agent/1001", "ana", PASSWORD)
    browser.wait_text("#agent-state", "Ready")
    browser.find("#preview-next").click()
    first = browser.text("#preview-number")
    name = browser.text("#preview-record [data-field='name']")
    assert (first, name) in (("0914000001", "An"), ("0914000002", "Binh")), (first, name)
    browser.shot("preview-record")
    browser.find("#preview-skip").click()
    assert browser.wait_text("#preview-status", "Skipped").endswith(first)
    browser.find("#preview-next").click()
    second = browser.wait_text("#preview-number", lambda text: text not in ("", first))
    procs += [sipp.agent(customer_port, "answer_bye", ring_ms=300, talk_ms=2000, calls=1),
              sipp.agent(agent_port, "answer", ring_ms=300, calls=1)]
    browser.find("#preview-dial").click()
    assert browser.wait_text("#preview-status", "Your phone rings").endswith(second)
    row = outbound_rows(w, 1, timeout=30)[0]
    assert row.agent_id == "1001" and row.called.endswith(second[1:]), row
