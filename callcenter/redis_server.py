"""An embedded redis-server on a local unix socket.

Used by `callcenter worker` when REDIS_URL is not set (the demo) and by the tests,
which need a real server they can stop and restart. AOF is on with fsync every second:
a restart loses no queued state.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from callcenter.exceptions import CallcenterError
from callcenter.privacy import UMASK, private_dir
from callcenter.redisconn import connect_sync

ZSET_LISTPACK_MAX = 32   # also what `callcenter doctor` advises for a shared Redis


class EmbeddedRedis:
    """A redis-server process owned by this one, data and socket under ``directory``."""

    def __init__(self, directory: str | Path, port: int = 0) -> None:
        self.directory = Path(directory).resolve()
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        if self.port:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"unix://{self.socket}?db=0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        exe = shutil.which("redis-server")
        if exe is None:
            raise CallcenterError("redis-server is not installed (apt-get install redis-server)")
        private_dir(self.directory)
        args = [exe, "--port", str(self.port), "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
                # routing's sorted sets (free agents, leases, waiting) change on every decision: a
                # listpack over ~32 entries re-parses every score on insert (bench/RESULTS.md)
                "--zset-max-listpack-entries", str(ZSET_LISTPACK_MAX)]
        if not self.port:
            args += ["--bind", "127.0.0.1"]
        # its AOF directory and files hold the queues' callers and campaigns' contacts: 0750/0640
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True, umask=UMASK)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client = connect_sync(self.url, ride_out_restarts=False, socket_connect_timeout=0.5)
                if client.ping():
                    client.close()
                    return self
            except (redis.ConnectionError, redis.BusyLoadingError, OSError):
                pass
            if self.proc.poll() is not None:
                raise CallcenterError(f"redis-server exited with {self.proc.returncode}; "
                                      f"see {self.directory / 'redis.log'}")
            time.sleep(0.05)
        raise CallcenterError(f"redis-server did not answer within {timeout}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
