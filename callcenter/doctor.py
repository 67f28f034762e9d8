"""`callcenter doctor`: is this machine able to run a worker?

Reports the pjsua2 build and its *effective* limits (measured, not read from a header),
Redis reachability and config validity; any failure makes the exit code non-zero. A 4-call
PyPI wheel is reported as a failure, never accepted silently.
"""

from __future__ import annotations

import struct
import sys
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path

NEEDED_CALLS = 1000
NEEDED_PLAYERS = 2000


@dataclass
class Report:
    lines: list[tuple[str, str, bool]] = field(default_factory=list)

    def add(self, what: str, value: str, ok: bool = True) -> None:
        self.lines.append((what, value, ok))

    @property
    def ok(self) -> bool:
        return all(ok for _, _, ok in self.lines)

    def render(self) -> str:
        width = max((len(w) for w, _, _ in self.lines), default=10)
        return "\n".join(f"{'ok ' if ok else 'FAIL'} {w:<{width}}  {v}" for w, v, ok in self.lines)


def _silence(path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<160h", *([0] * 160)))


def check_pjsua2(report: Report, probe_players: int = NEEDED_PLAYERS) -> None:
    try:
        import pjsua2 as pj
    except ImportError as exc:
        report.add("pjsua2", f"not importable ({exc}); run scripts/build_pjsua2.sh", False)
        return
    max_calls = pj.UaConfig().maxCalls           # pjsua_config_default() sets PJSUA_MAX_CALLS
    conf_ports = pj.MediaConfig().maxMediaPorts  # pjsua_media_config_default(): PJSUA_MAX_CONF_PORTS
    from callcenter.telephony.softswitch import media_only_endpoint

    ep = media_only_endpoint()
    try:
        report.add("pjsua2 version", ep.libVersion().full)
        report.add("max calls (PJSUA_MAX_CALLS)", str(max_calls), max_calls >= NEEDED_CALLS)
        report.add("conference ports", str(conf_ports), conf_ports >= NEEDED_PLAYERS)
        marks = sorted(Path(sys.prefix).glob(".pjsua2-*"))
        report.add("build", f"scripts/build_pjsua2.sh, config_site {marks[-1].name[8:]}" if marks
                   else "not from scripts/build_pjsua2.sh", bool(marks))
        players: list[pj.AudioMediaPlayer] = []
        p = None
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "silence.wav"
            _silence(wav)
            try:
                for _ in range(probe_players):
                    p = pj.AudioMediaPlayer()
                    p.createPlayer(str(wav), pj.PJMEDIA_FILE_NO_LOOP)
                    players.append(p)
            except pj.Error:
                pass
            got = len(players)
            players.clear()
            p = None  # every player must be gone before libDestroy()
        report.add("players (probed)", f"{got}{'+' if got >= probe_players else ''}", got >= probe_players)
    finally:
        ep.libDestroy()


def check_redis(report: Report, url: str) -> None:
    from callcenter.redis_server import ZSET_LISTPACK_MAX
    from callcenter.redisconn import connect_sync

    try:
        client = connect_sync(url, ride_out_restarts=False, socket_connect_timeout=2)
        info = client.info("server")
        persistence = client.config_get("appendonly").get("appendonly", "?")
        report.add("redis", f"{info.get('redis_version')} at {url.split('@')[-1]} (appendonly={persistence})",
                   True)
        raw = client.config_get("zset-max-listpack-entries").get("zset-max-listpack-entries")
        if raw is not None and int(raw) > ZSET_LISTPACK_MAX:
            # advice, not a failure: routing works, each decision just costs more
            report.add("redis zsets", f"zset-max-listpack-entries={int(raw)}; set it to {ZSET_LISTPACK_MAX} "
                       "for faster routing decisions (README: Scaling out)", True)
        client.close()
    except Exception as exc:  # noqa: BLE001
        report.add("redis", f"unreachable at {url.split('@')[-1]}: {exc}", False)
