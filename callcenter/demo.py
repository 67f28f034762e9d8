"""The demo: the hotline on SIP 5060 plus auto-answering agent phones on 5070.

`callcenter demo` starts a child process of agent phones (`callcenter demo-agents`), logs the
demo agents in, and runs a normal worker. Agents' SIP URIs in routing_rules.yaml point at
127.0.0.1:5070; any user part is answered there, so every agent has a phone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from callcenter import logs
from callcenter.config import Config
from callcenter.exceptions import CallGone
from callcenter.telephony.settings import SipSettings

if TYPE_CHECKING:
    from callcenter.auth import Auth

log = logs.get("demo")


def run_agent_phones(port: int, sounds: str, answer_after: float = 2.0, talk: float = 20.0) -> int:
    """A process of agent phones: ring, answer, greet, talk a while, hang up."""
    from callcenter.telephony.leg import PjLeg
    from callcenter.telephony.softswitch import PjSoftswitch

    logs.configure("info")
    greeting = Path(sounds) / "en" / "agent" / "hello.wav"
    music = Path(sounds) / "moh.wav"

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def answer(leg: PjLeg) -> None:
            with contextlib.suppress(CallGone):
                await leg.ring()
                await asyncio.sleep(answer_after)
                if leg.ended:
                    return
                await leg.answer()
                if greeting.exists():
                    await leg.play([str(greeting)], barge_in=False)
                elif music.exists():
                    await leg.start_hold(str(music))
                done = asyncio.ensure_future(leg.wait_ended())
                await asyncio.wait([done], timeout=talk)
                await leg.hangup()

        switch = PjSoftswitch(SipSettings(bind="127.0.0.1", port=port, transports=("udp",), rtp_port=40000,
                                          rtp_port_range=4000, max_calls=200, user="agents"), loop, answer)
        switch.start()
        stop = asyncio.Event()
        import signal

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await switch.shutdown(1.0)

    asyncio.run(main())
    return 0


# name -> (roles, agent id): one user per role, so a newcomer can try each view of the API
DEMO_USERS = {"agent1001": (["agent"], "1001"), "supervisor": (["supervisor"], None),
              "manager": (["campaign_manager"], None), "admin": (["admin"], None)}


async def ensure_demo_users(auth: Auth, path: Path, api_url: str) -> dict[str, str]:
    """Create the demo users that are missing, with generated passwords kept in ``path`` (mode 0600),
    and print who can log in where. Returns name -> password."""
    import secrets

    known: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, _, password = line.partition(" ")
            if name and password:
                known[name] = password.strip()
    for name, (roles, agent) in DEMO_USERS.items():
        if await auth.users.get(name) is None:
            known[name] = known.get(name) or secrets.token_urlsafe(12)
            await auth.users.create(name, roles, known[name], agent)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{n} {p}\n" for n, p in known.items()))
    os.chmod(path, 0o600)
    lines = [f"  {n:<11} {', '.join(DEMO_USERS[n][0]):<17} {known.get(n, '(password changed)')}"
             for n in DEMO_USERS]
    print(f"\nWeb console: {api_url}/console (sign in as one of these; agent1001's demo phone answers its calls)\n"
          f"Demo API at {api_url}: log in with POST /auth/login {{\"user\", \"password\"}}\n"
          + "\n".join(lines) + f"\n(passwords kept in {path}; demo only)\n", file=sys.stderr, flush=True)
    return known


def run_demo(cfg: Config, agents_port: int = 5070) -> int:
    """Agent phones in a child process, then a worker whose demo agents are logged in and ready."""
    from callcenter.worker import run_worker

    phones = subprocess.Popen([sys.executable, "-m", "callcenter", "demo-agents", "--port", str(agents_port),
                               "--sounds", str(cfg.sounds)], env=dict(os.environ))
    try:
        return run_worker(cfg, login_all_agents=True,
                          demo_users=lambda auth: ensure_demo_users(auth, cfg.data_dir / "demo-users.txt",
                                                                    f"http://{cfg.http.bind}:{cfg.http.port}"))
    finally:
        phones.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            phones.wait(5)
