"""``callcenter user ...``: manage API users on the config's Redis.

    callcenter user add ana --role agent --agent 1001 [--password-stdin]   (prompts otherwise)
    callcenter user add lan --role supervisor --role campaign_manager
    callcenter user passwd ana | disable ana | enable ana | delete ana | list [--json]
    callcenter user token ci-bot --label prometheus      prints the token once; only its hash is kept
    callcenter user monitoring lan --sip-uri sip:lan@10.0.0.5 --queue sales   the phone a monitor session rings,
                                                         the queues lan may monitor (--all-queues: every queue)

With no ``redis.url`` (the demo), the worker's embedded Redis under ``worker.data_dir`` is used: the
running one if there is one, else it is started for the command and stopped after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from callcenter.auth import Auth
from callcenter.auth.roles import ROLES
from callcenter.auth.users import UserError

if TYPE_CHECKING:
    from callcenter.config import Config


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
               with_config: Callable[[argparse.ArgumentParser], None]) -> None:
    p = subparsers.add_parser("user", help="HTTP API users: add, passwd, disable, enable, delete, list, token")
    sub = p.add_subparsers(dest="user_command", required=True)

    def sp(name: str, help: str) -> argparse.ArgumentParser:  # noqa: A002 - argparse's word
        q = sub.add_parser(name, help=help)
        with_config(q)
        q.set_defaults(func=run, action=name)
        return q

    a = sp("add", "create a user (password from a prompt, or stdin with --password-stdin)")
    a.add_argument("name")
    a.add_argument("--role", action="append", required=True, choices=sorted(ROLES), help="repeatable")
    a.add_argument("--agent", help="the agent id (routing_rules.yaml) an agent user acts as")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    pw = sp("passwd", "set a user's password (ends the user's sessions)")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")
    for name, text in (("disable", "disable a user (sessions end, tokens stop working)"),
                       ("enable", "enable a disabled user"), ("delete", "delete a user, its sessions and tokens")):
        sp(name, text).add_argument("name")
    ls = sp("list", "users and their roles")
    ls.add_argument("--json", action="store_true")
    m = sp("monitoring", "a supervisor's phone and the queues whose calls it may monitor (listen/whisper/barge)")
    m.add_argument("name")
    m.add_argument("--sip-uri", help="the phone a monitor session rings, sip:user@host[:port] ('' removes it)")
    m.add_argument("--queue", action="append", help="repeatable; replaces the list")
    m.add_argument("--all-queues", action="store_true", help="empty the list: every queue")
    t = sp("token", "issue an API token for a user (printed once)")
    t.add_argument("name")
    t.add_argument("--label", default="", help="what the token is for (shown in listings)")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the passwords differ")
    return first


@contextlib.contextmanager
def redis_url(cfg: Config) -> Iterator[str]:
    """The config's Redis, or the embedded one under data_dir (started for this command if not running)."""
    if cfg.redis.url:
        yield cfg.redis.url
        return
    import redis

    from callcenter.redis_server import EmbeddedRedis
    from callcenter.redisconn import connect_sync

    embedded = EmbeddedRedis(cfg.data_dir / "redis")
    try:
        running = connect_sync(embedded.url, ride_out_restarts=False, socket_connect_timeout=0.5).ping()
    except (redis.RedisError, OSError):
        running = False
    if running:
        yield embedded.url
        return
    embedded.start()
    try:
        yield embedded.url
    finally:
        embedded.stop()


async def _run(args: argparse.Namespace, url: str, prefix: str) -> int:
    from callcenter.redisconn import connect

    r = connect(url, ride_out_restarts=False)
    auth = Auth.connect(r, prefix)
    try:
        await _act(args, auth)
        if args.action != "list":     # changes made here are in the audit log like the admin API's
            await auth.audit.record(f"cli:{getpass.getuser()}", [], f"user {args.action}", {"user": args.name},
                                    "local", 200)
    finally:
        await r.aclose()
    return 0


async def _act(args: argparse.Namespace, auth: Auth) -> None:
    """One ``user`` subcommand (UserError/ValueError for the operator)."""
    if args.action == "add":
        user = await auth.users.create(args.name, args.role, _password(args), args.agent)
        print(f"user {user.name} created: {', '.join(sorted(user.roles))}"
              + (f" (agent {user.agent})" if user.agent else ""))
    elif args.action == "passwd":
        if await auth.users.get(args.name) is None:
            raise UserError(f"no user {args.name!r}")
        await auth.users.set_password(args.name, _password(args))
        print(f"password of {args.name} changed; its sessions ended")
    elif args.action in ("disable", "enable"):
        await auth.users.update(args.name, disabled=args.action == "disable")
        print(f"user {args.name} {args.action}d")
    elif args.action == "delete":
        await auth.users.delete(args.name)
        print(f"user {args.name} deleted")
    elif args.action == "list":
        users = await auth.users.list()
        if args.json:
            print(json.dumps([u.as_dict() for u in users], indent=2))
        for u in [] if args.json else users:
            print(f"{u.name:<20} {','.join(sorted(u.roles)):<32} {u.agent or '-':<8} "
                  f"{'disabled' if u.disabled else 'enabled'}")
    elif args.action == "monitoring":
        user = await auth.users.set_monitoring(args.name, args.sip_uri, [] if args.all_queues else args.queue)
        print(f"user {user.name}: phone {user.sip_uri or '-'}, monitors "
              f"{', '.join(sorted(user.queues)) or 'every queue'}")
    elif args.action == "token":
        token, tid = await auth.tokens.issue(args.name, args.label)
        print(token)
        print(f"token {tid} for {args.name}: shown once, only its hash is stored", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from callcenter.config import load_config

    cfg = load_config(args.config)
    try:
        with redis_url(cfg) as url:
            return asyncio.run(_run(args, url, cfg.redis.prefix))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:     # password strength
        print(f"error: {exc}", file=sys.stderr)
        return 1
