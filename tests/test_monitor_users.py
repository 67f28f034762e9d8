"""Who may monitor which calls, and the supervisor's phone: the pure scope rules, the user store against a
real Redis, and `callcenter user monitoring` as an operator runs it. (The sessions themselves, by tones
over real SIP: tests/test_monitor_sip.py.)"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from worker_proc import new_worker

from callcenter.auth import Auth
from callcenter.auth.users import UserError
from callcenter.calls.monitor import MonitorError, Supervisor, check_mode
from callcenter.redisconn import connect


def test_a_supervisor_sees_its_queues_an_empty_list_all_an_admin_everything() -> None:
    scoped = Supervisor("ana", frozenset({"supervisor"}), "sip:ana@pbx", frozenset({"sales", "vip"}))
    assert scoped.may_see("sales") and scoped.may_see("vip") and not scoped.may_see("support")
    assert Supervisor("bob", frozenset({"supervisor"}), None, frozenset()).may_see("support")
    assert Supervisor("root", frozenset({"admin"}), None, frozenset({"sales"})).may_see("support")


def test_modes_are_the_three_words() -> None:
    assert [check_mode(m) for m in ("listen", "whisper", "barge")] == ["listen", "whisper", "barge"]
    for bad in ("LISTEN", "spy", "", None, 1, ["listen"]):
        with pytest.raises(MonitorError) as err:
            check_mode(bad)
        assert err.value.status == 400


def test_the_phone_and_queues_of_a_supervisor_user(redis_url: str) -> None:
    async def go() -> None:
        r = connect(redis_url)
        users = Auth.connect(r).users
        await users.create("lan", ["supervisor"], "lan's secret")
        user = await users.set_monitoring("lan", "sip:lan@10.0.0.5:5070", ["sales", "vip", "sales"])
        assert user.sip_uri == "sip:lan@10.0.0.5:5070" and user.queues == {"sales", "vip"}
        assert user.as_dict()["queues"] == ["sales", "vip"]
        user = await users.set_monitoring("lan", queues=[])          # every queue; the phone stays
        assert user.queues == frozenset() and user.sip_uri == "sip:lan@10.0.0.5:5070"
        user = await users.update("lan", disabled=False)              # other changes keep both
        assert user.sip_uri == "sip:lan@10.0.0.5:5070"
        # a URI that could carry a header, a parameter or a second target is refused
        for bad in ("sip:lan@h\r\nX-Evil: 1", "sip:lan@h;maddr=evil", "sip:lan@h?Replaces=x", "tel:+84901", "lan"):
            with pytest.raises(UserError):
                await users.set_monitoring("lan", bad)
        for bad_queues in (["sa les"], ["x" * 65], [f"q{i}" for i in range(201)]):
            with pytest.raises(UserError):
                await users.set_monitoring("lan", queues=bad_queues)
        assert (await users.set_monitoring("lan", "")).sip_uri is None
        with pytest.raises(UserError):
            await users.set_monitoring("nobody", "sip:x@h")
        await r.aclose()

    asyncio.run(go())


def test_user_monitoring_command(tmp_path: Path, redis_url: str) -> None:
    w = new_worker(tmp_path, redis_url)
    w.write_config()

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "callcenter", "user", *args, "--config", str(w.config)],
                              input=stdin, capture_output=True, text=True, timeout=60)

    assert cli("add", "lan", "--role", "supervisor", "--password-stdin", stdin="lan's secret\n").returncode == 0
    p = cli("monitoring", "lan", "--sip-uri", "sip:lan@10.0.0.5", "--queue", "sales", "--queue", "vip")
    assert p.returncode == 0 and "phone sip:lan@10.0.0.5, monitors sales, vip" in p.stdout, p.stderr
    [lan] = json.loads(cli("list", "--json").stdout)
    assert lan["sip_uri"] == "sip:lan@10.0.0.5" and lan["queues"] == ["sales", "vip"]
    p = cli("monitoring", "lan", "--all-queues")
    assert p.returncode == 0 and "monitors every queue" in p.stdout, p.stderr
    p = cli("monitoring", "lan", "--sip-uri", "sip:lan@h;maddr=evil")
    assert p.returncode == 1 and "sip_uri" in p.stderr
