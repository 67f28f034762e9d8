"""`callcenter user ...` as an operator runs it, on the config's Redis (and on the embedded one)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from worker_proc import new_worker

from callcenter.auth import Auth
from callcenter.redisconn import connect


def cli(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callcenter", "user", *args, "--config", str(config)],
                          input=stdin, capture_output=True, text=True, timeout=60)


def authenticate(url: str, name: str, password: str) -> object:
    async def go() -> object:
        r = connect(url)
        user = await Auth.connect(r).users.authenticate(name, password)
        await r.aclose()
        return user

    return asyncio.run(go())


def test_user_add_list_disable_enable_token_passwd(tmp_path: Path, redis_url: str) -> None:
    w = new_worker(tmp_path, redis_url)
    w.write_config()
    p = cli(w.config, "add", "ana", "--role", "agent", "--agent", "1001", "--password-stdin", stdin="ana's secret\n")
    assert p.returncode == 0 and "ana created: agent (agent 1001)" in p.stdout, p.stderr
    p = cli(w.config, "add", "lan", "--role", "supervisor", "--role", "campaign_manager", "--password-stdin",
            stdin="lan's secret\n")
    assert p.returncode == 0, p.stderr
    p = cli(w.config, "add", "ana", "--role", "admin", "--password-stdin", stdin="another secret\n")
    assert p.returncode == 1 and "exists" in p.stderr
    p = cli(w.config, "add", "bob", "--role", "agent", "--password-stdin", stdin="bob's secret\n")
    assert p.returncode == 1 and "agent id" in p.stderr
    p = cli(w.config, "add", "bob", "--role", "root", "--password-stdin", stdin="bob's secret\n")
    assert p.returncode == 2 and "invalid choice" in p.stderr
    p = cli(w.config, "add", "bob", "--role", "admin", "--password-stdin", stdin="short\n")
    assert p.returncode == 1 and "at least 8" in p.stderr
    lines = cli(w.config, "list").stdout.splitlines()
    assert [ln.split()[:4] for ln in lines] == [["ana", "agent", "1001", "enabled"],
                                                ["lan", "campaign_manager,supervisor", "-", "enabled"]]
    assert authenticate(redis_url, "ana", "ana's secret") is not None

    assert cli(w.config, "disable", "ana").returncode == 0
    assert "disabled" in cli(w.config, "list").stdout.splitlines()[0]
    assert authenticate(redis_url, "ana", "ana's secret") is None
    assert cli(w.config, "enable", "ana").returncode == 0
    assert authenticate(redis_url, "ana", "ana's secret") is not None

    p = cli(w.config, "token", "lan", "--label", "wallboard")
    token = p.stdout.strip()
    assert p.returncode == 0 and token.startswith("cc_") and "shown once" in p.stderr
    w.start()
    try:
        assert w.http("GET", "/wallboard", token=token)[0] == 200
        assert w.http("GET", "/admin/rules", token=token)[0] == 403
    finally:
        w.stop()
    assert cli(w.config, "passwd", "ana", "--password-stdin", stdin="ana's new secret\n").returncode == 0
    assert authenticate(redis_url, "ana", "ana's secret") is None
    assert authenticate(redis_url, "ana", "ana's new secret") is not None
    assert cli(w.config, "delete", "ana").returncode == 0
    assert cli(w.config, "disable", "ana").returncode == 1
    assert cli(w.config, "token", "nobody").returncode == 1

    async def audited() -> list[str]:
        r = connect(redis_url)
        entries = await Auth.connect(r).audit.query(action="user ")
        await r.aclose()
        assert all(e.user.startswith("cli:") and e.address == "local" for e in entries)
        return [f"{e.action} {e.target['user']}" for e in reversed(entries)]

    assert asyncio.run(audited()) == ["user add ana", "user add lan", "user disable ana", "user enable ana",
                                      "user token lan", "user passwd ana", "user delete ana"]


def test_user_add_on_the_embedded_redis(tmp_path: Path) -> None:
    """No redis.url (the demo): the command starts the embedded Redis under data_dir and stops it."""
    w = new_worker(tmp_path, "unused")
    w.write_config()
    text = w.config.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("redis:"))
    w.config.write_text(text.replace(line, 'redis: {url: "", prefix: "cc:"}'))
    p = cli(w.config, "add", "root", "--role", "admin", "--password-stdin", stdin="root's secret\n")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "redis" / "appendonlydir").exists() or (tmp_path / "redis").exists()
    assert cli(w.config, "list").stdout.split()[:2] == ["root", "admin"]
