"""Scrape /metrics from a real twisted.web server and read it with Prometheus' own text parser.

The queue state comes from a real Redis populated through the routing Router (2 callers waiting
in `sales` for ~30 s, two agents logged in not ready, one logged out); the per-worker counters
follow a known scenario played in the serving process.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from repo import REPO
from routing_helpers import Clock, call, make

from callcenter.metrics import QueueCollector
from callcenter.redisconn import connect_sync
from callcenter.worker import queue_collector

SERVER = r"""
import sys
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site
from callcenter import metrics as m
from callcenter.redisconn import connect_sync
from callcenter.worker import queue_collector

m.register_queue_collector(queue_collector(connect_sync(sys.argv[1]), "cc:"))
# the scenario: 3 inbound answered, 1 abandoned, 2 outbound answered
m.CALLS_TOTAL.labels("inbound", "answered").inc(3)
m.CALLS_TOTAL.labels("inbound", "abandoned").inc()
m.CALLS_TOTAL.labels("outbound", "answered").inc(2)
m.CALLS_IN_PROGRESS.labels("inbound").set(2)
m.QUEUE_OFFERED_TOTAL.labels("sales").inc(4)
m.QUEUE_ANSWERED_TOTAL.labels("sales").inc(3)
m.QUEUE_ABANDONED_TOTAL.labels("sales").inc(1)
for w in (4, 12, 25):
    m.QUEUE_WAIT_SECONDS.labels("sales", "answered").observe(w)
m.QUEUE_WAIT_SECONDS.labels("sales", "abandoned").observe(40)
for h in (100, 250, 390):
    m.HANDLE_SECONDS.labels("sales").observe(h)
m.DIALER_ATTEMPTS_TOTAL.labels("promo", "answered").inc(2)
m.DIALER_ATTEMPTS_TOTAL.labels("promo", "busy").inc()
m.SIP_ERRORS_TOTAL.labels("486").inc()
root = Resource()
root.putChild(b"metrics", m.metrics_resource())
port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
print(port.getHost().port, flush=True)
reactor.run()
"""


def populate(url: str) -> None:
    async def main() -> None:
        rt = await make(url, clock=Clock(time.time() - 30))
        await rt.agent_login("a1", ready=False)
        await rt.agent_login("a2", ready=False)
        await call(rt, "c1")
        await call(rt, "c2")
        await rt.redis.aclose()

    asyncio.run(main())


def scrape(url: str) -> dict[str, object]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, url], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"metrics server did not start: {proc.stderr.read()}")
        with urllib.request.urlopen(f"http://127.0.0.1:{int(line)}/metrics", timeout=30) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
    finally:
        proc.terminate()
        proc.wait(10)
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fam, **labels: str) -> float:
    for s in fam.samples:
        if s.name.endswith(("_created",)):
            continue
        if all(s.labels.get(k) == v for k, v in labels.items()) and (
                set(s.labels) - {"le"} == set(labels) or "le" in labels):
            return s.value
    raise AssertionError(f"no sample {labels} in {fam.name}")


def test_metrics_endpoint_known_scenario(redis_url: str) -> None:
    populate(redis_url)
    fams = scrape(redis_url)

    # counters: the parser drops _total from the family name and keeps it on the samples
    assert fams["callcenter_calls"].type == "counter"
    assert value(fams["callcenter_calls"], direction="inbound", result="answered") == 3
    assert value(fams["callcenter_calls"], direction="outbound", result="answered") == 2
    assert {s.name for s in fams["callcenter_calls"].samples} >= {"callcenter_calls_total"}
    assert value(fams["callcenter_queue_offered"], queue="sales") == 4
    assert value(fams["callcenter_dialer_attempts"], campaign="promo", result="busy") == 1
    assert fams["callcenter_calls_in_progress"].type == "gauge"
    assert value(fams["callcenter_calls_in_progress"], direction="inbound") == 2

    # histograms in seconds: 3 answered waits 4 + 12 + 25
    wait = fams["callcenter_queue_wait_seconds"]
    assert wait.type == "histogram"
    samples = {(s.name, s.labels.get("le")): s.value for s in wait.samples if s.labels.get("outcome") == "answered"}
    assert samples[("callcenter_queue_wait_seconds_count", None)] == 3
    assert samples[("callcenter_queue_wait_seconds_sum", None)] == 41
    assert samples[("callcenter_queue_wait_seconds_bucket", "20.0")] == 2
    assert samples[("callcenter_queue_wait_seconds_bucket", "+Inf")] == 3
    handle = fams["callcenter_handle_seconds"]
    assert value(handle, queue="sales", le="300.0") == 2

    # the queue collector, read from Redis at scrape time
    assert value(fams["callcenter_queue_collector_up"]) == 1
    assert fams["callcenter_queue_waiting_calls"].type == "gauge"
    assert value(fams["callcenter_queue_waiting_calls"], queue="sales") == 2
    assert value(fams["callcenter_queue_waiting_calls"], queue="support") == 0
    assert 29 <= value(fams["callcenter_queue_oldest_wait_seconds"], queue="sales") <= 45
    assert value(fams["callcenter_agents"], state="paused") == 2
    assert value(fams["callcenter_agents"], state="logged_out") == 1
    assert value(fams["callcenter_queue_agents"], queue="sales", state="paused") == 2
    assert value(fams["callcenter_queue_offered_today"], queue="sales") == 2
    assert 0 <= value(fams["callcenter_queue_service_level_ratio"], queue="sales") <= 1
    assert value(fams["callcenter_cdr_backlog_entries"]) == 0

    # conventions: prefixed names, unit suffixes, and no phone number in any label
    phone = re.compile(r"\d{6,}")
    for fam in fams.values():
        if fam.name.startswith(("python_", "process_")):
            continue
        assert fam.name.startswith("callcenter_"), fam.name
        if fam.type == "histogram":
            assert fam.name.endswith("_seconds"), fam.name
        for s in fam.samples:
            assert not any(phone.search(v) for v in s.labels.values()), s


def test_collector_reports_down_when_redis_is_unreachable(tmp_path) -> None:
    reg = CollectorRegistry()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = connect_sync(f"unix://{tmp_path / 'nothing.sock'}", ride_out_restarts=False, socket_connect_timeout=0.5,
                          retry=Retry(NoBackoff(), 0))
    reg.register(queue_collector(client, "cc:"))
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}
    assert value(fams["callcenter_queue_collector_up"]) == 0
    assert "callcenter_queue_waiting_calls" not in fams


def test_collector_reads_through_the_callables_it_is_given() -> None:
    from callcenter.routing.wallboard import QueueStats

    def stats() -> list[QueueStats]:
        return [QueueStats("vip", 3, 75.5, {"available": 0, "on_call": 4}, 10, 6, 2, 5, 0.625)]

    reg = CollectorRegistry()
    reg.register(QueueCollector(stats, lambda: {"on_call": 4}, lambda: 7))
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}
    assert value(fams["callcenter_queue_oldest_wait_seconds"], queue="vip") == 75.5
    assert value(fams["callcenter_queue_service_level_ratio"], queue="vip") == 0.625
    assert value(fams["callcenter_queue_agents"], queue="vip", state="on_call") == 4
    assert value(fams["callcenter_cdr_backlog_entries"]) == 7


def exposed_names() -> set[str]:
    """Every sample name the package can expose: module metrics plus the queue collector's."""
    from prometheus_client.metrics import MetricWrapperBase

    from callcenter import metrics
    from callcenter.routing.wallboard import QueueStats

    names: set[str] = set()
    for obj in vars(metrics).values():
        if isinstance(obj, MetricWrapperBase):
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(obj._type, [""])
            names.update(obj._name + s for s in suffixes)

    stats = [QueueStats("q", 1, 1.0, {"available": 1}, 1, 1, 0, 1, 1.0)]
    collector = metrics.QueueCollector(lambda: stats, lambda: {"a": 1}, lambda: 0)
    names.update(f.name for f in collector.collect())
    return names


@pytest.mark.parametrize("path", ["deploy/prometheus/alerts.yml", "deploy/grafana/callcenter-overview.json"])
def test_dashboards_and_alerts_use_real_metric_names(path: str) -> None:
    text = (REPO / path).read_text()
    used = set(re.findall(r"\bcallcenter_[a-z_]+", text))
    assert used, path
    assert used <= exposed_names(), sorted(used - exposed_names())


def test_alert_rules_cover_the_required_conditions() -> None:
    import yaml

    doc = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())
    rules = {r["alert"]: r for g in doc["groups"] for r in g["rules"]}
    assert {"CallcenterServiceLevelLow", "CallcenterOldestWaitHigh", "CallcenterNoAgentsLoggedIn",
            "CallcenterWorkerDown"} <= set(rules)
    for r in rules.values():
        assert r["expr"].strip() and r["labels"]["severity"] in ("warning", "critical") and r["annotations"]["summary"]


def test_every_metric_has_its_help_in_the_catalogue_and_nothing_else_is_there() -> None:
    """metrics.yaml holds each metric's help text once: a declared metric without one fails at import, and the
    catalogue names no metric the package does not expose (a counter's name there has its _total)."""
    from prometheus_client.metrics import MetricWrapperBase

    from callcenter import metrics

    declared = {o._name + ("_total" if o._type == "counter" else "") for o in vars(metrics).values()
                if isinstance(o, MetricWrapperBase)}
    collected = {f.name for f in metrics.QueueCollector(lambda: [], lambda: {}, lambda: 0).collect()}
    assert set(metrics.HELP) == declared | collected
    assert all(len(text) > 10 and text.endswith(".") for text in metrics.HELP.values())
