"""A real worker process (`callcenter worker`) for end-to-end tests, with its own config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ports
from repo import REPO

from callcenter.cdr.writer import open_store
from callcenter.redisconn import connect, connect_sync

RTP_PORTS = 2000    # sip.rtp_port_range of a test worker (tests of the media slots shrink it)


# Every worker a test started: conftest stops the ones still running when their module ends, so a test
# that fails before its own stop() leaves no worker behind to hold ports, a worker id or the CPU.
STARTED: list[WorkerProc] = []


def stop_leftovers() -> None:
    while STARTED:
        w = STARTED.pop()
        if w.proc is not None and w.proc.poll() is None:
            w.stop(timeout=10)


@dataclass
class WorkerProc:
    tmp: Path
    redis_url: str
    sip_port: int
    http_port: int
    agents_port: int
    worker_id: str
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    rtp_port: int = 0      # first of its RTP range; 0: one from tests/ports.py

    def __post_init__(self) -> None:
        if not self.rtp_port:
            self.rtp_port = ports.block(RTP_PORTS, media=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    @property
    def config(self) -> Path:
        return self.tmp / f"{self.worker_id}.yaml"

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.tmp / 'cdr.db'}"

    @property
    def log(self) -> Path:
        return self.tmp / f"{self.worker_id}.log"

    def write_config(self, rules: Path | None = None, extra: str = "", trunk: str = "",
                     campaigns: Path | None = None, ivr_scripts: Path | None = None,
                     routes: dict[str, str] | None = None, sip_extra: str = "", sounds: Path | None = None) -> None:
        # sipp callers that only pause send no RTP at all (a phone always does): keep sip.rtp_timeout
        # (60 s by default) out of the way of long scripted waits unless a test sets it.
        if "rtp_timeout" not in sip_extra:
            sip_extra = ", ".join(x for x in ("rtp_timeout: 300", sip_extra) if x)
        # On a CI box shared by many tests the worker may get no CPU for a second or more: the overload
        # gate on loop lag would then answer a test's caller 503. Tests of that gate set their own.
        if "capacity:" not in extra:
            extra = f"capacity: {{loop_lag_seconds: 10}}\n{extra}"
        rules = rules or self.tmp / "routing_rules.yaml"
        if not rules.exists():
            text = demo_rules(self.agents_port)
            # Short timings so scenarios run in seconds.
            text = text.replace("ring_timeout: 15", "ring_timeout: 4").replace("wrapup: 10", "wrapup: 0")
            rules.write_text(text)
        self.config.write_text(f"""
worker: {{id: {self.worker_id}, data_dir: {self.tmp}, drain_seconds: 5}}
sip: {{bind: 127.0.0.1, port: {self.sip_port}, transports: [udp, tcp], rtp_port: {self.rtp_port},
      rtp_port_range: {RTP_PORTS}, max_calls: 1000{f', trunk: "{trunk}"' if trunk else ''}{f', {sip_extra}' if sip_extra else ''}}}
redis: {{url: "{self.redis_url}", prefix: "cc:"}}
http: {{bind: 127.0.0.1, port: {self.http_port}, metrics_token: {METRICS_TOKEN}}}
paths: {{ivr_scripts: {ivr_scripts or REPO / 'ivr_scripts'}, sounds: {sounds or REPO / 'sounds'}, routing_rules: {rules},
        campaigns: {campaigns or REPO / 'campaigns'}}}
cdr: {{store: "{self.store_url}", writer: true}}
routes: {json.dumps(routes or {"hotline": "hotline", "default": "hotline"})}
{extra}
""")

    def start(self, timeout: float = 20.0) -> WorkerProc:
        if not self.config.exists():
            self.write_config()
        env = dict(os.environ, CRM_URL="http://127.0.0.1:9")
        env.update(self.env)    # a test may point CRM_URL at its own server
        readies = self.log.read_text(errors="replace").count('"worker ready"') if self.log.exists() else 0
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([sys.executable, "-m", "callcenter", "worker", "--config", str(self.config)],
                                     stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.tmp)
        STARTED.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            if self.log.read_text(errors="replace").count('"worker ready"') > readies:   # this run's
                return self
            time.sleep(0.1)
        raise AssertionError(f"worker not ready in {timeout}s:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def login(self, *agents: str) -> None:
        """Log the agents in, ready (as their HTTP API call would, straight on the router)."""
        self._agents("login", agents)

    def logout(self, *agents: str) -> None:
        self._agents("logout", agents)

    def _agents(self, action: str, agents: tuple[str, ...]) -> None:
        import asyncio

        from callcenter.redisconn import connect
        from callcenter.routing.router import Router

        async def go() -> None:
            r = connect(self.redis_url)
            router = Router(r, "test")
            for a in agents:
                if action == "login":
                    await router.agent_login(a, ready=True)
                else:
                    await router.agent_logout(a)
            await r.aclose()

        asyncio.run(go())

    def calls(self, wait_for: int = 1, timeout: float = 15.0, where: Callable[[Any], bool] | None = None) -> list[Any]:
        """CDR call rows from the store once at least `wait_for` calls (those `where` accepts) have ended."""
        deadline = time.monotonic() + timeout
        rows: list[Any] = []
        while time.monotonic() < deadline:
            try:
                store = open_store(self.store_url)
                rows = [c for c in store.calls(limit=None) if c.end and (where is None or where(c))]
                store.close()
            except Exception:  # noqa: BLE001 - not created yet
                rows = []
            if len(rows) >= wait_for:
                return rows
            time.sleep(0.2)
        raise AssertionError(f"only {len(rows)} ended calls in the CDR store after {timeout}s:\n{self.tail()}")

    def http(self, method: str, path: str, body: Any = None, token: str | None = "admin",
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """(status, decoded body) of a request to the worker's HTTP API; JSON in, JSON (or text) out.
        ``token``: "admin" sends a test admin's API token (made on the worker's Redis), another string
        is sent as the bearer token, None sends no credentials."""
        import urllib.error
        import urllib.request

        data = json.dumps(body).encode() if body is not None else (b"" if method in ("POST", "PUT", "PATCH") else None)
        hdrs = {"content-type": "application/json"}
        if token is not None:
            hdrs["authorization"] = f"Bearer {admin_token(self.redis_url) if token == 'admin' else token}"
        hdrs.update(headers or {})
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method,
                                     headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                if "json" in resp.headers.get("content-type", ""):
                    return resp.status, json.loads(raw or b"{}")
                return resp.status, raw.decode()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw or b"{}")
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def call_from(self, number: str, timeout: float = 20.0) -> Any:
        """The CDR row of the (last) call from `number` once it has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = [c for c in self.calls(0) if c.caller == number and c.end]
            if rows:
                return rows[-1]
            time.sleep(0.2)
        raise AssertionError(f"no ended CDR row for {number}:\n{self.tail()}")

    def events(self, call_id: str) -> list[str]:
        store = open_store(self.store_url)
        try:
            return [e.event for e in store.events(call_id)]
        finally:
            store.close()


METRICS_TOKEN = "test-metrics-token"
_tokens: dict[str, str] = {}


def fetch(w: WorkerProc, path: str, token: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    """GET a worker's HTTP path as raw bytes (a recording, a voicemail): (status, headers, body), errors included."""
    req = urllib.request.Request(f"http://127.0.0.1:{w.http_port}{path}",
                                 headers={"authorization": f"Bearer {token}", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def api_user(redis_url: str, name: str, roles: list[str], agent: str | None = None, prefix: str = "cc:") -> str:
    """An API token of a user with these roles on that Redis (the user is made again if it exists)."""
    import asyncio

    from callcenter.auth import Auth

    async def go() -> str:
        r = connect(redis_url)
        auth = Auth.connect(r, prefix)
        if await auth.users.get(name) is not None:
            await auth.users.delete(name)
        await auth.users.create(name, roles, "test password 1", agent)
        token, _ = await auth.tokens.issue(name, "tests")
        await r.aclose()
        return token

    return asyncio.run(go())


def admin_token(redis_url: str, prefix: str = "cc:") -> str:
    """The test admin's API token on that Redis, made again when a test flushed it."""
    from callcenter.auth.keys import AuthKeys
    from callcenter.auth.sessions import digest

    token = _tokens.get(redis_url)
    if token is not None:
        c = connect_sync(redis_url)
        alive = c.exists(AuthKeys(prefix).token(digest(token)))
        c.close()
        if alive:
            return token
    _tokens[redis_url] = api_user(redis_url, "test-admin", ["admin"], prefix=prefix)
    return _tokens[redis_url]


def demo_rules(agents_port: int) -> str:
    """The shipped routing_rules.yaml with every demo agent's phone on 127.0.0.1:agents_port."""
    return (REPO / "routing_rules.yaml").read_text().replace("127.0.0.1:5070", f"127.0.0.1:{agents_port}")


def queue_flow(name: str, queue: str, music: str, **options: str) -> str:
    """An IVR flow (YAML) straight to one queue, hanging up when the queue gives up; options: more keys of
    the queue node, as YAML values (max_wait="120")."""
    extra = "".join(f"    {key}: {value}\n" for key, value in options.items())
    return f"""name: {name}
languages: [vi]
default_language: vi
start: queue
nodes:
  queue:
    type: queue
    queue: {queue}
{extra}    music: {music}
    on_failure: bye
  bye:
    type: hangup
"""


def new_worker(tmp: Path, redis_url: str, worker_id: str = "w1") -> WorkerProc:
    """A worker on ports of its own (tests/ports.py): SIP UDP+TCP, HTTP, its agents' phones, RTP."""
    base = ports.block(3)
    return WorkerProc(tmp, redis_url, base, base + 1, base + 2, worker_id)


def flush(redis_url: str) -> None:
    c = connect_sync(redis_url)
    c.flushall()
    c.close()


def running(tmp: Path, redis_url: str) -> Iterator[WorkerProc]:
    """A module fixture's worker: on a flushed Redis, started, and after the module's tests stopped cleanly
    (``yield from running(...)``, or ``for w in running(...):`` with more setup before its ``yield w``)."""
    flush(redis_url)
    w = new_worker(tmp, redis_url)
    w.start()
    yield w
    assert w.stop() == 0, w.tail()


def flow_worker(tmp: Path, redis_url: str, flows: dict[str, str], entry: str) -> WorkerProc:
    """A worker (to start) on which every call runs the flow ``entry`` of these flows (name -> YAML, flow_dirs),
    with the demo rules' agents (phones on its agents_port, no wrap-up pause), on a flushed Redis (the test
    module owns it: no other test's agents or calls)."""
    import re

    flush(redis_url)
    scripts, campaigns = flow_dirs(tmp, flows)
    w = new_worker(tmp, redis_url)
    (tmp / "rules.yaml").write_text(re.sub(r"wrapup: \d+", "wrapup: 0", demo_rules(w.agents_port)))
    w.write_config(rules=tmp / "rules.yaml", ivr_scripts=scripts, campaigns=campaigns,
                   routes={"hotline": entry, "default": entry})
    return w


def flow_dirs(tmp: Path, flows: dict[str, str]) -> tuple[Path, Path]:
    """An IVR scripts folder holding these flows (name -> YAML) and an empty campaigns folder, under tmp:
    write_config's ivr_scripts and campaigns for a worker that runs only a test's own flows."""
    scripts, campaigns = tmp / "ivr", tmp / "campaigns"
    for d in (scripts, campaigns):
        d.mkdir(exist_ok=True)
    for name, text in flows.items():
        (scripts / f"{name}.yaml").write_text(text)
    return scripts, campaigns


def users_worker(tmp: Path, redis_url: str, users: dict[str, tuple[list[str], str | None]],
                 flows: dict[str, str] | None = None) -> WorkerProc:
    """A started worker on a flushed Redis with these API users: name -> (roles, agent id); their password is
    api_user's. ``flows``: it runs only these (flow_worker: every call the first), else new_worker's config."""
    if flows:
        w = flow_worker(tmp, redis_url, flows, next(iter(flows))).start()
    else:
        flush(redis_url)
        w = new_worker(tmp, redis_url).start()
    for name, (roles, agent) in users.items():
        api_user(redis_url, name, roles, agent=agent)
    return w
