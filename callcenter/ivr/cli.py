"""``callcenter ivr check`` and ``callcenter ivr simulate`` (wired into callcenter/cli.py by add_parser)."""

from __future__ import annotations

import argparse
import sys

from callcenter import logs
from callcenter.exceptions import ConfigError
from callcenter.ivr.checker import check
from callcenter.ivr.script import script_files
from callcenter.ivr.services import QueueOutcome
from callcenter.ivr.simulate import load_for, simulate_sync


class _Stderr:
    """Whatever sys.stderr is at write time (it is swapped under test runners and daemons)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    ivr = subparsers.add_parser("ivr", help="IVR flows: check and dry-run")
    sub = ivr.add_subparsers(dest="ivr_command", required=True)
    c = sub.add_parser("check", help="validate every flow of a directory")
    c.add_argument("directory", nargs="?", default="ivr_scripts")
    c.add_argument("--sounds", default="sounds", help="prompt directory (sounds/<lang>/<name>.wav)")
    c.add_argument("--no-prompts", action="store_true", help="skip the prompt-file checks")
    c.set_defaults(func=check_command)
    s = sub.add_parser("simulate", help="walk a flow without a call, printing prompts and variables")
    s.add_argument("script", help="e.g. ivr_scripts/hotline.yaml")
    s.add_argument("--digits", default="", help="inputs in order, comma-separated: 1,2,15032026#  ('' = timeout)")
    s.add_argument("--caller", default="0901234567")
    s.add_argument("--called", default="1900")
    s.add_argument("--var", action="append", default=[], metavar="K=V", help="a call variable (repeatable)")
    s.add_argument("--lang", default=None, choices=["vi", "en"])
    s.add_argument("--sounds", default="sounds")
    s.add_argument("--queue-outcome", default="connected", choices=[o.value for o in QueueOutcome])
    s.add_argument("--hangup-when-done", action="store_true", help="the caller hangs up after the last input")
    s.set_defaults(func=simulate_command)
    return ivr


def check_command(args: argparse.Namespace) -> int:
    issues = check(args.directory, None if args.no_prompts else args.sounds)
    for issue in issues:
        print(f"{issue.severity.upper()}: {issue}")
    errors = sum(1 for i in issues if i.severity == "error")
    n = len(script_files(args.directory))
    print(f"{n} file(s) checked: {errors} error(s), {len(issues) - errors} warning(s)")
    return 1 if errors else 0


def simulate_command(args: argparse.Namespace) -> int:
    logs.configure("warning", stream=_Stderr())   # the transcript owns stdout
    variables = {}
    for kv in args.var:
        if "=" not in kv:
            print(f"--var {kv!r}: expected K=V", file=sys.stderr)
            return 2
        k, v = kv.split("=", 1)
        variables[k.strip()] = v
    try:
        scripts, entry = load_for(args.script)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    digits = [d for d in args.digits.split(",")] if args.digits else []
    result, transcript, services = simulate_sync(
        scripts, entry, digits, caller=args.caller, called=args.called, variables=variables,
        language=args.lang, sounds_dir=args.sounds, queue_outcome=QueueOutcome(args.queue_outcome),
        hangup_when_done=args.hangup_when_done)
    print("\n".join(transcript.lines))
    print(f"\npath: {result.ivr_path}")
    print(f"outcome: {result.outcome}  language: {result.language}  queue: {result.queue_outcome or '-'}")
    if result.survey:
        print(f"survey: {result.survey}")
    for ev, data in services.events:
        print(f"event: {ev} {data}")
    for number, scope in services.dnc:
        print(f"dnc: {number} ({scope})")
    for err in result.errors:
        print(f"error: {err}")
    shown = {k: v for k, v in result.variables.items() if k not in ("call_id",)}
    print(f"variables: {shown}")
    return 0
