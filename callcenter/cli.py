"""The `callcenter` command: a thin layer over the library."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from callcenter.exceptions import ConfigError
from callcenter.privacy import restrict_umask

if TYPE_CHECKING:     # imported by the commands that need it: `callcenter --help` stays light
    from callcenter.config import Config

DEFAULT_CONFIG = os.environ.get("CALLCENTER_CONFIG", "callcenter.yaml")


def _config(args: argparse.Namespace) -> Config:
    from callcenter.config import load_config

    return load_config(args.config)


def cmd_worker(args: argparse.Namespace) -> int:
    from callcenter.worker import run_worker

    return run_worker(_config(args), dialer=getattr(args, "dialer", False))


def cmd_demo(args: argparse.Namespace) -> int:
    from callcenter.demo import run_demo

    return run_demo(_config(args), agents_port=args.agents_port)


def cmd_demo_agents(args: argparse.Namespace) -> int:
    from callcenter.demo import run_agent_phones

    return run_agent_phones(args.port, args.sounds, answer_after=args.answer_after, talk=args.talk)


def cmd_doctor(args: argparse.Namespace) -> int:
    from callcenter.doctor import Report, check_pjsua2, check_redis
    from callcenter.worker import validate

    report = Report()
    check_pjsua2(report)
    try:
        cfg = _config(args)
        validate(cfg)
        report.add("config", f"{cfg.file} valid (routing rules, {len(list(cfg.ivr_scripts.glob('*.yaml')))} "
                              f"IVR flows)")
        if not args.no_redis:
            if cfg.redis.url:
                check_redis(report, cfg.redis.url)
            else:
                report.add("redis", "embedded: the worker starts its own redis-server on a local socket")
    except ConfigError as exc:
        report.add("config", str(exc), False)
    print(report.render())
    return 0 if report.ok else 1


def cmd_kamailio(args: argparse.Namespace) -> int:
    from callcenter import edge
    from callcenter.routing import rules as routing_rules

    rules = routing_rules.load(args.rules or _config(args).routing_rules)
    credentials = edge.load_credentials(args.credentials, rules)
    cert, key = args.tls_cert or "", args.tls_key or ""
    if args.self_signed:
        made = edge.self_signed(args.out, args.self_signed)
        cert, key = str(made[0]), str(made[1])
        print(f"wrote a self-signed certificate for {', '.join(args.self_signed)}: {made[0]}")
    encryption = edge.Encryption(rtpengine=args.rtpengine or "", certificate=cert, private_key=key,
                                 wss_port=args.wss_port, ws_port=args.ws_port)
    out = edge.write_tables(args.out, credentials, args.worker, realm=args.realm, trunks=args.trunk,
                            limits=edge.limits_from(args), encryption=encryption, rpc=args.rpc or "")
    missing = sorted(set(rules.agents) - set(credentials))
    print(f"wrote {out}/subscriber ({len(credentials)} agents), version, dispatcher.list ({len(args.worker)} workers"
          f", {len(args.trunk)} trunks)")
    if missing:
        print(f"note: no credentials for {', '.join(missing)}: those agents cannot register at the edge")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="worker config (env CALLCENTER_CONFIG)")

    w = sub.add_parser("worker", help="run a softswitch worker")
    with_config(w)
    w.add_argument("--dialer", action="store_true", default=os.environ.get("CALLCENTER_DIALER") == "1",
                   help="also run the outbound dialer for the campaigns directory (env CALLCENTER_DIALER=1)")
    w.set_defaults(func=cmd_worker)
    d = sub.add_parser("demo", help="run the demo hotline with demo agent phones")
    with_config(d)
    d.add_argument("--agents-port", type=int, default=5070)
    d.set_defaults(func=cmd_demo)
    a = sub.add_parser("demo-agents", help="auto-answering agent phones (sip:<agent>@host:port)")
    a.add_argument("--port", type=int, default=5070)
    a.add_argument("--sounds", default="sounds")
    a.add_argument("--answer-after", type=float, default=2.0)
    a.add_argument("--talk", type=float, default=20.0)
    a.set_defaults(func=cmd_demo_agents)
    doc = sub.add_parser("doctor", help="check pjsua2 limits, Redis and config")
    with_config(doc)
    doc.add_argument("--no-redis", action="store_true", help="skip the Redis check")
    doc.set_defaults(func=cmd_doctor)

    k = sub.add_parser("kamailio", help="write the SIP edge's tables (agents' digest HA1s, the workers list)")
    with_config(k)
    k.add_argument("--rules", help="routing rules (default: the config's paths.routing_rules)")
    k.add_argument("--credentials", required=True, help="YAML: <agent id>: <SIP password> (keep it 0600)")
    k.add_argument("--worker", action="append", required=True, metavar="HOST:PORT",
                   help="a worker's SIP address for the dispatcher (repeat)")
    k.add_argument("--trunk", action="append", default=[], metavar="HOST[:PORT]",
                   help="a SIP trunk the edge trusts (no bans, its P-Asserted-Identity kept; repeat)")
    k.add_argument("--out", default="/etc/kamailio/callcenter", help="directory Kamailio reads (DBURL, DSLIST)")
    k.add_argument("--realm", default="callcenter", help="digest realm (REALM in kamailio.cfg)")
    k.add_argument("--rtpengine", metavar="udp:HOST:PORT",
                   help="rtpengine's ng socket: anchor the media of agents on TLS, WebSocket or behind NAT")
    k.add_argument("--tls-cert", metavar="PEM", help="the edge's certificate: SIP over TLS and WSS (needs --rtpengine)")
    k.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    k.add_argument("--self-signed", action="append", metavar="NAME",
                   help="make a self-signed certificate for this host name or address into --out (repeat; demo)")
    k.add_argument("--wss-port", type=int, default=8443, help="browsers' wss:// port (default 8443)")
    k.add_argument("--ws-port", type=int, default=0, help="a plain ws:// port, LAN or localhost only (default none)")
    k.add_argument("--rpc", metavar="HOST:PORT",
                   help="an admin-only address where the workers read the registrations over JSON-RPC (callcenter.yaml "
                        "edge.registrations: http://HOST:PORT/RPC), so calls are offered only to agents with a phone; "
                        "then give the SIP listeners with -l")
    from callcenter import edge

    edge.add_limit_options(k)
    k.set_defaults(func=cmd_kamailio)

    from callcenter.cdr import cli as cdr_cli
    from callcenter.ivr import cli as ivr_cli

    ivr_cli.add_parser(sub)
    cdr_cli.add_parser(sub)
    from callcenter.auth import cli as user_cli

    user_cli.add_parser(sub, with_config)
    from callcenter.dialer import cli as dialer_cli

    dialer_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # what a command writes (CDR store, recordings, edge credentials, exports) is not world-readable
    restrict_umask()
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
