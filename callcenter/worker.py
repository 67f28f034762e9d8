"""The composition root of a softswitch worker: builds every object with explicit arguments,
then runs them on one loop (Twisted's asyncio reactor) until SIGTERM.

Startup refuses to go on when the config, the routing rules or any IVR flow is invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import redis
import redis.asyncio as aredis_client

from callcenter import logs, metrics, privacy, redisconn
from callcenter.calls import dialing
from callcenter.calls.amd import MachineDetector
from callcenter.calls.click_to_call import ClickToCall
from callcenter.calls.conference import Conferences
from callcenter.calls.dnc import DncWriter
from callcenter.calls.inbound import InboundCalls, close_out
from callcenter.calls.monitor import Monitoring
from callcenter.calls.outbound import OutboundCalls
from callcenter.calls.preview import PreviewDesk
from callcenter.calls.queueing import Queueing
from callcenter.calls.recording import Recordings, purge
from callcenter.calls.records import LiveCalls
from callcenter.calls.services import DialerServices, FlowServices
from callcenter.calls.transfer import Transfers
from callcenter.calls.voicemail import VoicemailCallbacks, VoicemailIndex
from callcenter.cdr import keys as cdr_keys
from callcenter.cdr.buffer import CdrBuffer
from callcenter.cdr.record import QueueEvent
from callcenter.cdr.store import ReportParams, SqlStore
from callcenter.cdr.writer import open_store, run_cdr_writer
from callcenter.config import Config
from callcenter.dialer.campaign import Campaign, load_campaigns
from callcenter.dialer.compliance import Compliance
from callcenter.dialer.control import CampaignControl
from callcenter.dialer.engine import DialerEngine
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.policy import DialPolicy
from callcenter.events.bus import Hub, publish_queue_stats
from callcenter.events.webhooks import Deliverer
from callcenter.exceptions import ConfigError
from callcenter.ivr.checker import load_scripts
from callcenter.ivr.model import QueueOptions, ScriptSet, SetOptions
from callcenter.ivr.runner import IvrRunner
from callcenter.redis_server import EmbeddedRedis
from callcenter.routing import rules as routing_rules
from callcenter.routing import wallboard
from callcenter.routing.router import Router, RoutingError
from callcenter.tasks import every
from callcenter.telephony.api import Leg

if TYPE_CHECKING:
    from callcenter.api.forward import Forwarder
    from callcenter.api.guard import Guard
    from callcenter.auth import Auth

DemoUsers = Callable[["Auth"], Awaitable[Any]]   # the demo: creates its API users if missing

log = logs.get("worker")


def install_reactor() -> Any:
    """Twisted's asyncio reactor: one loop for Twisted (HTTP) and asyncio (Redis, calls)."""
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with contextlib.suppress(Exception):
        asyncioreactor.install(loop)
    from twisted.internet import reactor

    return reactor


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


def queue_collector(sync_redis: redis.Redis, prefix: str) -> metrics.QueueCollector:
    """The /metrics collector of the shared queue state: routing's wallboard reads and the CDR stream's
    length, from a synchronous client (scrapes run in Twisted's thread pool)."""
    return metrics.QueueCollector(lambda: wallboard.queue_stats(sync_redis, prefix),
                                  lambda: wallboard.agent_states(sync_redis, prefix),
                                  lambda: int(sync_redis.xlen(cdr_keys.stream(prefix))))


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
    demo_users: DemoUsers | None = None
    recordings: Recordings | None = None   # built by run() when the config records calls
    monitoring: Monitoring | None = None   # supervisors' monitor sessions, built by run()
    conferences: Conferences | None = None   # conferences of bridged calls, built by run()
    transfers: Transfers | None = None   # blind and attended transfers of bridged calls, built by run()
    voicemails: VoicemailIndex | None = None   # the voicemail inbox's index, built by run()
    click_to_call: ClickToCall | None = None   # agents' own dials (POST /agents/{id}/dial), built by run()
    hub: Hub | None = None                     # the event bus's reader for GET /events, built with the API
    deliverer: Deliverer | None = None         # this worker's webhook deliveries (webhooks: configured), ditto
    forwarder: Forwarder | None = None   # call-scoped requests to the worker holding the call, built by run()

    async def run(self) -> None:
        # Imported here: pjsua2 is only needed by a process that carries calls.
        from callcenter.telephony.softswitch import PjSoftswitch

        cfg = self.cfg
        prefix = cfg.redis.prefix
        loop = asyncio.get_running_loop()
        aredis = redisconn.connect(self.redis_url)
        router = Router(aredis, cfg.worker_id, prefix)
        await router.apply_rules(self.rules)
        cdr = CdrBuffer(aredis, prefix)
        # the only live process with this worker id (waits out a crashed predecessor's claim, refuses a
        # live one), and what that predecessor left in the queues is closed out
        await close_out(cdr, await router.claim())

        # -- the call layer (callcenter/calls): one object per concept, each given what it uses
        live = LiveCalls()
        service_levels = {name: float(q.service_level) for name, q in self.rules.queues.items()}
        # one dial policy for every number this worker dials (callbacks, transfers, campaign dials)
        dial_policy = DialPolicy(cfg.dialing, aredis, DialerKeys(prefix))
        dnc = DncWriter(Compliance(aredis, DialerKeys(prefix)), self.campaigns)
        inbound: InboundCalls | None = None

        async def incoming(leg: Leg) -> None:   # the switch's calls reach the handler built below
            assert inbound is not None
            await inbound.handle(leg)

        switch = PjSoftswitch(cfg.sip, loop, incoming)
        if cfg.recording is not None:
            from callcenter.telephony.recorder import PjTap

            own = {c.id: c.recording for c in self.campaigns.values() if c.recording is not None}
            self.recordings = Recordings(cfg.recording.with_campaigns(own), PjTap)
            switch.digit_listeners.append(self.recordings.on_digit)    # the agent's keypad pauses/resumes
        queueing = Queueing(router, switch, cdr, live, policy=dial_policy, trunk=cfg.trunk,
                            service_levels=service_levels, recordings=self.recordings)
        self.voicemails = VoicemailIndex(aredis, prefix)
        flows = FlowServices(queueing, dnc, live, cdr, self.voicemails)
        ivr = IvrRunner(self.scripts, flows, cfg.sounds, recordings_dir=cfg.data_dir / "recordings",
                        dial_policy=dial_policy, trunk=cfg.trunk)
        inbound = InboundCalls(ivr, cdr, live, flow_for=cfg.flow_for, worker_id=cfg.worker_id)
        self.monitoring = Monitoring(queueing, switch, cdr, None, ring_timeout=cfg.monitor_ring_timeout)
        self.conferences = Conferences(queueing, switch, cdr, ring_timeout=cfg.monitor_ring_timeout)
        self.transfers = Transfers(queueing, switch, cdr, self.conferences, ring_timeout=cfg.monitor_ring_timeout)
        # agents' click-to-call: its customer legs go through an OutboundCalls (a CDR per dial) of its own
        c2c_ids = cfg.click_to_call.caller_ids or tuple(sorted({c.caller_id for c in self.campaigns.values()}))
        self.click_to_call = ClickToCall(
            cfg.click_to_call, c2c_ids,
            OutboundCalls(switch, cdr, live, queueing, ivr, redis=aredis, keys=DialerKeys(prefix),
                          worker_id=cfg.worker_id, sounds=Path(cfg.sounds), music=Path(cfg.queue.music)),
            switch, router, dial_policy, Compliance(aredis, DialerKeys(prefix)), trunk=cfg.trunk)

        async def tick() -> None:
            queueing.handle_events(await router.tick())
            await close_out(cdr, router.closed_out)

        tasks = [asyncio.ensure_future(every(2.0, router.heartbeat, self.stop, "heartbeat")),
                 asyncio.ensure_future(every(1.0, tick, self.stop, "tick")),
                 asyncio.ensure_future(queueing.run_offers(self.stop)),
                 # voicemail entries kept through a Redis outage are re-sent
                 asyncio.ensure_future(every(5.0, self.voicemails.flush, self.stop, "voicemail index"))]
        if cfg.recording is not None:
            settings = cfg.recording

            async def purge_recordings() -> None:
                await asyncio.to_thread(purge, settings.dir, settings.retention_days)

            tasks.append(asyncio.ensure_future(every(3600.0, purge_recordings, self.stop, "recordings purge")))
        if cfg.run_cdr_writer:
            # Opens the store lazily and retries while it is down: a database outage never stops
            # a worker from taking calls (records wait in the Redis stream).
            sl = ReportParams(sl_by_queue=service_levels)
            tasks.append(asyncio.ensure_future(run_cdr_writer(aredis, cfg.cdr_store, self.stop, prefix,
                                                              consumer=cfg.worker_id, thresholds=sl)))
        desk: PreviewDesk | None = None
        dialer_redis: aredis_client.Redis | None = None
        if self.dialer_enabled:
            campaigns = dialing.prepare(self.campaigns, cfg.trunk, Path(cfg.sounds))
            bad = dialing.missing_flows(campaigns, self.scripts.scripts)
            if bad:
                log.error("dialer not started: campaign IVR flow missing", campaigns=bad)
            else:
                dialer_redis = redisconn.connect(self.redis_url)
                keys = DialerKeys(prefix)
                music = Path(cfg.queue.music)
                calls = OutboundCalls(
                    switch, cdr, live, queueing,
                    IvrRunner(self.scripts, DialerServices(flows), cfg.sounds,
                              recordings_dir=cfg.data_dir / "recordings", dial_policy=dial_policy, trunk=cfg.trunk),
                    redis=dialer_redis, keys=keys, worker_id=cfg.worker_id, sounds=Path(cfg.sounds),
                    music=music if music.is_file() else Path(cfg.sounds) / "moh.wav")
                amd = MachineDetector(live)
                # The engine dials through OutboundCalls.originate: the worker's switch plus one CDR per attempt.
                engine = DialerEngine(dialer_redis, calls, campaigns, calls.connect_agent, calls.run_ivr, prefix,
                                      free_agents=router.free_agents, busy_agents=router.busy_agents,
                                      amd=amd.detect, dialer_id=f"{cfg.worker_id}-dialer", policy=dial_policy)
                desk = PreviewDesk(engine, calls, switch, router, CampaignControl(dialer_redis, keys), campaigns,
                                   redis=dialer_redis, keys=keys)
                tasks.append(asyncio.ensure_future(dialing.run_dialer(engine, desk, calls, amd, self.stop,
                                                                       cfg.drain_seconds + 2.0)))
        sync_redis = redisconn.connect_sync(self.redis_url)
        from callcenter.api.forward import Forwarder

        self.forwarder = Forwarder(aredis, cfg.worker_id, cfg.http.advertise, prefix=prefix,
                                   is_local=live.records.__contains__, call_owner=router.call_owner,
                                   alive=router.alive, timeout=cfg.http.forward_timeout)
        await self.forwarder.refresh()     # other workers find this API (and the deployment's key) from now on
        tasks.append(asyncio.ensure_future(every(5.0, self.forwarder.refresh, self.stop, "http advertise")))
        auth = self._start_http(router, cdr, sync_redis, aredis, desk, queueing)
        switch.start()
        tasks += self._start_events(aredis, sync_redis)
        if cfg.edge.registrations:   # offers only to agents with a phone registered at the edge
            from callcenter.routing import phones

            tasks.append(asyncio.ensure_future(every(cfg.edge.poll_every, lambda: phones.poll(aredis, router, cfg.edge),
                                                     self.stop, "edge phones")))
        if self.demo_users is not None and auth is not None:
            await self.demo_users(auth)
        if self.login_all_agents:
            for agent_id in self.rules.agents:
                await router.agent_login(agent_id, ready=True)
        # Everything built so far lives as long as the process: out of the cyclic collector's sight, so
        # the softswitch's periodic full collections walk only what calls allocate (they were 2-3%
        # of a worker's CPU at 50 calls/s, most of it re-walking these objects).
        gc.freeze()
        log.info("worker ready", worker=cfg.worker_id, sip_port=cfg.sip.port, http_port=cfg.http.port)
        await self.stop.wait()
        log.info("draining", live_calls=len(switch.legs), deadline=cfg.drain_seconds)
        await switch.shutdown(cfg.drain_seconds)
        await self.click_to_call.close(2.0)
        await self.click_to_call.calls.close(2.0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await cdr.flush()
        try:
            await router.release()   # a restart under this id need not wait for the claim to lapse
            if self.forwarder is not None:
                await self.forwarder.withdraw()
        except redis.RedisError as exc:
            log.warning("releasing the worker id failed", error=str(exc))
        if dialer_redis is not None:
            await dialer_redis.aclose()
        await aredis.aclose()
        log.info("worker stopped")

    def _start_http(self, router: Router, cdr: CdrBuffer, sync_redis: redis.Redis, aredis: aredis_client.Redis,
                    desk: PreviewDesk | None, queueing: Queueing) -> Auth | None:
        """The HTTP API and /metrics on ``http.port``; returns the API's Auth (None with auth off)."""
        from twisted.internet import reactor
        from twisted.internet.asyncioreactor import AsyncioSelectorReactor
        from twisted.web.resource import Resource

        from callcenter.api import admin, agents, calls, campaigns, reports
        from callcenter.api import contacts as contacts_api
        from callcenter.api import live as live_api
        from callcenter.api import wrapup as wrapup_api
        from callcenter.api.bodylimit import LimitedSite
        from callcenter.api.http import HttpRouter
        from callcenter.console import pages as console_pages
        from callcenter.console.pages import Console, PageGuard

        guard = self._guard(aredis)
        # the web console's pages are routes like the API's; refused, they answer a page (sign in, not allowed)
        console = Console.load(self.rules.pause_reasons, self.cfg.wrapup.as_dict(),
                               self.click_to_call.caller_ids if self.click_to_call is not None else (),
                               [(c.id, c.name) for c in self.campaigns.values() if desk and c.dial_mode == "preview"])
        api = HttpRouter(guard=PageGuard.around(guard, console), forwarder=self.forwarder)
        if self.cfg.phone is not None:      # the agent desk's browser phone: its own SIP credentials at the edge
            from callcenter.console import phone as phone_api

            book = phone_api.PhoneBook.load(self.cfg.phone, self.rules)
            phone_api.install_routes(api, book)
            console.phone = book.origin()

        async def agent_event(event: str, agent_id: str, data: dict[str, Any]) -> None:
            await cdr.event(QueueEvent.make(event, agent_id=agent_id, **data))

        agents.install_routes(api, router, sync_redis, on_event=agent_event)
        admin.install_routes(api, router, self.cfg.routing_rules)
        from callcenter.api import events as events_api

        async def agent_queues(agent_id: str) -> frozenset[str]:
            info = await router.agent_info(agent_id)
            return frozenset(info["queues"]) if info else frozenset()

        self.hub = Hub(aredis, self.cfg.redis.prefix, self.cfg.events.heartbeat)
        if self.cfg.events.webhooks:
            self.deliverer = Deliverer(aredis, self.cfg.redis.prefix, self.cfg.events.webhooks,
                                       consumer=self.cfg.worker_id)
        events_api.install_routes(api, self.hub, aredis, self.cfg.redis.prefix,
                                  guard.auth.users if guard is not None else None, agent_queues,
                                  limits=self.cfg.events, deliverer=self.deliverer)
        calls.install_routes(api, queueing)
        live_api.install_routes(api, router, queueing, guard.auth.users if guard is not None else None)
        if self.monitoring is not None:
            from callcenter.api import monitor as monitor_api

            self.monitoring.audit = guard.auth.audit if guard is not None else None
            monitor_api.install_routes(api, self.monitoring, guard.auth.users if guard is not None else None)
        if self.conferences is not None:
            from callcenter.api import conference as conference_api

            conference_api.install_routes(api, self.conferences)
        if self.transfers is not None:
            from callcenter.api import transfer as transfer_api

            transfer_api.install_routes(api, self.transfers, guard.auth.users if guard is not None else None)
        if self.click_to_call is not None:
            from callcenter.api import dial as dial_api

            dial_api.install_routes(api, self.click_to_call)
        campaigns.install_routes(api, aredis, self.campaigns, self.cfg.redis.prefix, desk=desk)
        cdr_store: SqlStore | None = None     # reports and the recordings' paths read it
        try:
            cdr_store = open_store(self.cfg.cdr_store)
            reports.install_routes(api, cdr_store)
        except Exception as exc:  # noqa: BLE001 - the store may be down at boot; calls go on
            log.warning("reports API unavailable: CDR store not reachable", error=str(exc))
        if self.recordings is not None:
            from callcenter.api import recordings as recordings_api

            recordings_api.install_routes(api, self.recordings, cdr_store)
        if self.voicemails is not None:
            from callcenter.api import voicemail as voicemail_api

            voicemail_api.install_routes(api, self.voicemails, self.cfg.data_dir / "recordings",
                                         guard.auth.users if guard is not None else None,
                                         VoicemailCallbacks(self.voicemails, router, queueing.policy, cdr),
                                         store=cdr_store)
        metrics.register_queue_collector(queue_collector(sync_redis, self.cfg.redis.prefix))
        metrics_res: Resource = metrics.metrics_resource()
        if guard is not None:
            from callcenter.api import auth as auth_api
            from callcenter.api import users as users_api

            auth_api.install_routes(api, guard.auth, guard, secure_cookie=self.cfg.http.cookie_secure)
            users_api.install_routes(api, guard.auth)
        wrapup_api.install_routes(api, self.cfg.wrapup, queueing.live, cdr, cdr_store)
        contacts_api.install_routes(api, queueing, cdr_store)       # the screen pop's recent contacts
        console_pages.install_routes(api, console)      # last: it looks for GET /events among the routes
        if guard is not None or self.cfg.http.metrics_token:   # a configured token is wanted even with auth off
            from callcenter.api.guard import MetricsGuard

            metrics_res = MetricsGuard(metrics_res, self.cfg.http.metrics_token, guard)

        class Root(Resource):
            def getChild(self, path: bytes, request: Any) -> Resource:  # noqa: N802 - twisted name
                return metrics_res if path == b"metrics" else api

        # bodies over their route's cap are refused from the headers, before twisted reads them
        # and large bodies (rules, CSV lists) are read only once their sender is admitted
        site = LimitedSite(Root(), api.body_limit, api.largest_body, admit=api.admit_headers)
        # install_reactor() made the reactor this one (the module attribute is typed as an interface)
        cast(AsyncioSelectorReactor, reactor).listenTCP(self.cfg.http.port, site, interface=self.cfg.http.bind)
        return guard.auth if guard is not None else None

    def _start_events(self, aredis: aredis_client.Redis, sync_redis: redis.Redis) -> list[asyncio.Task[None]]:
        """queue.stats publishing (one worker per period) and this worker's share of webhook delivery."""
        cfg, prefix = self.cfg, self.cfg.redis.prefix

        async def queue_stats() -> None:
            await publish_queue_stats(aredis, prefix, lambda now: wallboard.queue_stats(sync_redis, prefix, now),
                                      cfg.events.queue_stats_every)

        out = [asyncio.ensure_future(every(cfg.events.queue_stats_every, queue_stats, self.stop, "queue stats"))]
        if self.deliverer is not None:
            out.append(asyncio.ensure_future(self.deliverer.run(self.stop)))
        return out

    def _guard(self, aredis: aredis_client.Redis) -> Guard | None:
        """Authentication for the API (None with ``http.auth: false``, which config allows on loopback only)."""
        from callcenter.api.guard import Guard, default_origins
        from callcenter.auth import Auth

        h = self.cfg.http
        if not h.auth:
            log.warning("http.auth is off: anyone who reaches the API on this host may use it", bind=h.bind)
            return None
        auth = Auth.connect(aredis, self.cfg.redis.prefix, h.session_idle_seconds, h.session_max_seconds,
                            h.login_failures, h.login_window_seconds, h.audit_max_entries)
        return Guard(auth, frozenset(h.allowed_origins) or default_origins(h.bind, h.port), self.forwarder)


def run_worker(cfg: Config, login_all_agents: bool = False, dialer: bool = False,
               demo_users: DemoUsers | None = None) -> int:
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
