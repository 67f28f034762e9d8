"""The composition root of a softswitch worker: builds every object with explicit arguments,
then runs them on one loop (Twisted's asyncio reactor) until SIGTERM.

Startup refuses to go on when the config, the routing rules or any IVR flow is invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import redis
import structlog

from callcenter import logs, metrics, privacy
from callcenter.cdr.buffer import CdrBuffer
from callcenter.cdr.dispositions import disposition_from_events
from callcenter.cdr.record import CallRecord, LegRecord, QueueEvent
from callcenter.cdr.store import ReportParams
from callcenter.cdr.writer import open_store, run_cdr_writer
from callcenter.config import Config
from callcenter.dialer.campaign import Campaign, load_campaigns
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.policy import DialPolicy
from callcenter.exceptions import CallGone, ConfigError
from callcenter.ivr.checker import load_scripts
from callcenter.ivr.model import QueueOptions, ScriptSet, SetOptions
from callcenter.ivr.runner import IvrResult, IvrRunner
from callcenter.redis_server import EmbeddedRedis
from callcenter.routing import rules as routing_rules
from callcenter.routing.router import Router, RoutingError, connect_sync, retry_kwargs
from callcenter.tasks import every

log = logs.get("worker")
_INBOUND_IN_PROGRESS = metrics.CALLS_IN_PROGRESS.labels(direction="inbound")   # per call: the child, looked up once


def install_reactor() -> Any:
    """Twisted's asyncio reactor: one loop for Twisted (HTTP) and asyncio (Redis, calls)."""
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with contextlib.suppress(Exception):
        asyncioreactor.install(loop)
    from twisted.internet import reactor

    return reactor


def connect_pooled(url: str, size: int = 256) -> Any:
    """The worker's asyncio Redis client: a pool that *waits* for a free connection under load
    (redis-py's default pool raises at once when its connections are all busy), with the router's
    retry settings so a Redis restart is ridden out."""
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=size, timeout=10, decode_responses=True,
                                                    **retry_kwargs())
    return aioredis.Redis(connection_pool=pool)


def validate(cfg: Config) -> tuple[ScriptSet, routing_rules.RoutingRules, dict[str, Campaign]]:
    """Everything a worker needs that can be wrong in files, read once; raises ConfigError naming the
    place (a broken campaign file stops the start too)."""
    scripts = load_scripts(cfg.ivr_scripts, cfg.sounds)
    rules = routing_rules.load(cfg.routing_rules)
    campaigns = load_campaigns(cfg.campaigns)
    for script in scripts.scripts.values():
        for node in script.nodes.values():
            queue = node.opts.queue if isinstance(node.opts, QueueOptions | SetOptions) else None
            if isinstance(queue, str) and "{" not in queue and queue not in rules.queues:
                raise ConfigError(f"queue {queue!r} is not in {cfg.routing_rules.name} "
                                  f"(queues: {', '.join(sorted(rules.queues))})", file=node.file,
                                  key=f"{script.name}.{node.id}.queue", line=node.line_of("queue"))
    for called, flow in cfg.routes.items():
        if flow not in scripts.scripts:
            raise ConfigError(f"IVR flow {flow!r} does not exist in {cfg.ivr_scripts}", file=str(cfg.file),
                              key=f"routes.{called}")
    return scripts, rules, campaigns


@dataclass
class Worker:
    cfg: Config
    scripts: ScriptSet
    rules: routing_rules.RoutingRules
    campaigns: dict[str, Campaign]
    redis_url: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    embedded: EmbeddedRedis | None = None
    login_all_agents: bool = False   # the demo: every configured agent logged in and ready
    dialer_enabled: bool = False     # run the outbound dialer for campaigns/*.yaml in this worker
    demo_users: Any = None           # the demo: async fn(Auth) creating demo API users if missing

    async def run(self) -> None:
        # Imported here: pjsua2 is only needed by a process that carries calls.
        from callcenter.calls.queueing import QueueService
        from callcenter.telephony.softswitch import PjSoftswitch

        cfg = self.cfg
        loop = asyncio.get_running_loop()
        aredis = connect_pooled(self.redis_url)
        self.router = Router(aredis, cfg.worker_id, cfg.redis.prefix)
        await self.router.apply_rules(self.rules)
        self.cdr = CdrBuffer(aredis, cfg.redis.prefix)
        # the only live process with this worker id (waits out a crashed predecessor's claim, refuses a
        # live one), and what that predecessor left in the queues is closed out
        await self._close_out(await self.router.claim())
        self.switch = PjSoftswitch(cfg.sip, loop, self._inbound)
        service_levels = {name: float(q.service_level) for name, q in self.rules.queues.items()}
        # one dial policy for every number this worker dials (callbacks, transfers, campaign dials)
        self.dial_policy = DialPolicy(cfg.dialing, aredis, DialerKeys(cfg.redis.prefix))
        self.queues = QueueService(self.router, self.switch, self.cdr, trunk=cfg.trunk,
                                   service_levels=service_levels, policy=self.dial_policy)
        self.queues.dnc = self._dnc_writer(aredis)
        self.ivr = IvrRunner(self.scripts, self.queues, cfg.sounds, recordings_dir=cfg.data_dir / "recordings",
                             dial_policy=self.dial_policy, trunk=cfg.trunk)
        tasks = [asyncio.ensure_future(every(2.0, self._heartbeat, self.stop, "heartbeat")),
                 asyncio.ensure_future(every(1.0, self._tick, self.stop, "tick")),
                 asyncio.ensure_future(self.queues.run_offers(self.stop))]
        if cfg.run_cdr_writer:
            # Opens the store lazily and retries while it is down: a database outage never stops
            # a worker from taking calls (records wait in the Redis stream).
            sl = ReportParams(sl_by_queue=service_levels)
            tasks.append(asyncio.ensure_future(run_cdr_writer(aredis, cfg.cdr_store, self.stop, cfg.redis.prefix,
                                                              consumer=cfg.worker_id, thresholds=sl)))
        if self.dialer_enabled:
            from callcenter.calls.outbound import run_dialer

            tasks.append(asyncio.ensure_future(run_dialer(self, self.stop)))
        self._start_http(connect_sync(self.redis_url), aredis)
        self.switch.start()
        if self.demo_users is not None and getattr(self, "auth", None) is not None:
            await self.demo_users(self.auth)
        if self.login_all_agents:
            for agent_id in self.rules.agents:
                await self.router.agent_login(agent_id, ready=True)
        # Everything built so far lives as long as the process: out of the cyclic collector's sight, so
        # the softswitch's periodic full collections walk only what calls allocate (they were 2-3%
        # of a worker's CPU at 50 calls/s, most of it re-walking these objects).
        gc.freeze()
        log.info("worker ready", worker=cfg.worker_id, sip_port=cfg.sip.port, http_port=cfg.http.port)
        await self.stop.wait()
        log.info("draining", live_calls=len(self.switch.legs), deadline=cfg.drain_seconds)
        await self.switch.shutdown(cfg.drain_seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.cdr.flush()
        try:
            await self.router.release()   # a restart under this id need not wait for the claim to lapse
        except redis.RedisError as exc:
            log.warning("releasing the worker id failed", error=str(exc))
        await aredis.aclose()
        log.info("worker stopped")

    def _dnc_writer(self, aredis: Any) -> Any:
        """"Do not call me again" from any flow, with or without the dialer in this process: the number
        goes on the dialer's DNC list (global, or one campaign's when the flow names it)."""
        from callcenter.dialer import phone
        from callcenter.dialer.compliance import Compliance
        from callcenter.dialer.keys import DialerKeys

        compliance = Compliance(aredis, DialerKeys(self.cfg.redis.prefix))

        async def add(number: str, scope: str) -> None:
            try:
                e164 = phone.normalize(number, "VN")
            except ValueError:
                log.warning("dnc: not a phone number", number=number)
                return
            await compliance.add_dnc(e164, None if scope in ("", "global") else scope)

        return add

    def _start_http(self, sync_redis: Any, aredis: Any) -> None:
        from twisted.internet import reactor
        from twisted.web.resource import Resource

        from callcenter.api import admin, agents, campaigns, reports
        from callcenter.api.bodylimit import LimitedSite
        from callcenter.api.http import HttpRouter

        guard = self._guard(aredis)
        api = HttpRouter(guard=guard)
        async def agent_event(event: str, agent_id: str, data: dict[str, Any]) -> None:
            await self.cdr.event(QueueEvent.make(event, agent_id=agent_id, **data))

        agents.install_routes(api, self.router, sync_redis, on_event=agent_event)
        admin.install_routes(api, self.router)
        campaigns.install_routes(api, aredis, self.campaigns, self.cfg.redis.prefix,
                                 outbound=lambda: getattr(self, "outbound", None))
        try:
            reports.install_routes(api, open_store(self.cfg.cdr_store))
        except Exception as exc:  # noqa: BLE001 - the store may be down at boot; calls go on
            log.warning("reports API unavailable: CDR store not reachable", error=str(exc))
        metrics.register_queue_collector(sync_redis, self.cfg.redis.prefix)
        metrics_res = metrics.metrics_resource()
        if guard is not None:
            from callcenter.api import auth as auth_api
            from callcenter.api import users as users_api

            auth_api.install_routes(api, guard.auth, guard, secure_cookie=self.cfg.http.cookie_secure)
            users_api.install_routes(api, guard.auth)
        if guard is not None or self.cfg.http.metrics_token:   # a configured token is wanted even with auth off
            from callcenter.api.guard import MetricsGuard

            metrics_res = MetricsGuard(metrics_res, self.cfg.http.metrics_token, guard)

        class Root(Resource):
            def getChild(self, path: bytes, request: Any) -> Resource:  # noqa: N802 - twisted name
                return metrics_res if path == b"metrics" else api

        # bodies over their route's cap are refused from the headers, before twisted reads them
        # and large bodies (rules, CSV lists) are read only once their sender is admitted
        site = LimitedSite(Root(), api.body_limit, api.largest_body, admit=api.admit_headers)
        reactor.listenTCP(self.cfg.http.port, site, interface=self.cfg.http.bind)  # type: ignore[attr-defined]

    def _guard(self, aredis: Any) -> Any:
        """Authentication for the API (None with ``http.auth: false``, which config allows on loopback only)."""
        from callcenter.api.guard import Guard, default_origins
        from callcenter.auth import Auth

        h = self.cfg.http
        if not h.auth:
            log.warning("http.auth is off: anyone who reaches the API on this host may use it", bind=h.bind)
            return None
        auth = Auth.connect(aredis, self.cfg.redis.prefix, h.session_idle_seconds, h.session_max_seconds,
                            h.login_failures, h.login_window_seconds, h.audit_max_entries)
        self.auth = auth
        return Guard(auth, frozenset(h.allowed_origins) or default_origins(h.bind, h.port))

    async def _heartbeat(self) -> None:
        await self.router.heartbeat()

    async def _tick(self) -> None:
        events = await self.router.tick()
        self.queues.handle_events(events)
        await self._close_out(self.router.closed_out)

    async def _close_out(self, call_ids: list[str]) -> None:
        """The callers were on a dead worker's media (another worker, or this id's previous run):
        close their records out rather than leave phantoms."""
        now = time.time()
        for call_id in call_ids:
            rec = CallRecord(call_id, "inbound", None, None, None, end=now,  # type: ignore[arg-type]
                             hangup_side="system", hangup_cause="worker_crash", outcome="failed")
            rec.hold_seconds = None  # type: ignore[assignment]
            rec.callback = None  # type: ignore[assignment]
            rec.survey = None  # type: ignore[assignment]
            await self.cdr.call(rec)

    # -- one inbound call ----------------------------------------------------------------

    async def _inbound(self, leg: Any) -> None:
        structlog.contextvars.bind_contextvars(call_id=leg.id)
        rec = CallRecord(leg.id, "inbound", leg.caller, leg.called, leg.created, worker_id=self.cfg.worker_id)
        self.queues.records[leg.id] = rec
        _INBOUND_IN_PROGRESS.inc()
        flow = self.cfg.flow_for(leg.called)
        log.info("incoming call", caller=leg.caller, called=leg.called, flow=flow)
        result: IvrResult | None = None
        try:
            await leg.answer()
            rec.answer = time.time()
            await self.cdr.call(rec)
            result = await self.ivr.run(leg, entry=flow, language=None)
            if not leg.ended:
                await leg.hangup()
        except CallGone:
            pass
        except Exception:  # one broken call never takes the worker down
            log.exception("call failed")
            with contextlib.suppress(Exception):
                await leg.hangup(500)
        finally:
            self.queues.records.pop(leg.id, None)
            _INBOUND_IN_PROGRESS.dec()
            structlog.contextvars.unbind_contextvars("call_id")
        info = await leg.wait_ended()
        rec.end = time.time()
        if result is not None:
            for name, value in result.cdr_fields().items():
                setattr(rec, name, value)
        if rec.hangup_side is None:
            rec.hangup_side = "caller" if info.side.value == "caller" else "system"
            rec.hangup_cause = f"{info.sip_code} {info.reason}".strip()
        if rec.outcome is None:
            rec.outcome = "ivr_only" if rec.answer else "failed"
        disp = disposition_from_events(self.queues.call_events.pop(leg.id, []), time.time())
        if disp is not None:
            rec.disposition = disp["disposition"]
        metrics.CALLS_TOTAL.labels(direction="inbound", result=rec.outcome).inc()
        await self.cdr.call(rec)
        await self.cdr.leg(LegRecord(leg.id, leg.id, "inbound", leg.caller, None, leg.created, rec.answer,
                                     rec.end, info.sip_code, "answered" if rec.answer else "failed"))
        log.info("call ended", outcome=rec.outcome, path=rec.ivr_path, side=rec.hangup_side, call_id=leg.id)


def run_worker(cfg: Config, login_all_agents: bool = False, dialer: bool = False, demo_users: Any = None) -> int:
    """Validate, then run the worker until SIGTERM/SIGINT. Returns the exit code."""
    logs.configure(cfg.log_level)
    # recordings, the CDR store and Redis's data are personal data: 0640/0750 whatever the caller's umask
    privacy.restrict_umask()
    privacy.private_dir(cfg.data_dir)
    privacy.private_dir(cfg.data_dir / "recordings")
    scripts, rules, campaigns = validate(cfg)
    embedded = None
    url = cfg.redis.url
    if not url:
        embedded = EmbeddedRedis(cfg.data_dir / "redis").start()
        url = embedded.url
        log.info("embedded redis started", socket=str(embedded.socket))
    reactor = install_reactor()
    worker = Worker(cfg, scripts, rules, campaigns, url, embedded=embedded, login_all_agents=login_all_agents,
                    dialer_enabled=dialer, demo_users=demo_users)
    exit_code = 0

    async def main() -> None:
        nonlocal exit_code
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop.set)
        try:
            await worker.run()
        except RoutingError as exc:   # e.g. the worker id is in use, or Redis holds another key layout
            log.error("worker cannot start", error=str(exc))
            exit_code = 1
        except Exception:
            log.exception("worker failed")
            exit_code = 1
        finally:
            reactor.callLater(0, reactor.stop)

    reactor.callWhenRunning(lambda: asyncio.ensure_future(main()))
    reactor.run(installSignalHandlers=False)
    if embedded is not None:
        embedded.stop()
    return exit_code
