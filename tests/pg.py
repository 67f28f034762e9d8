"""A real PostgreSQL 15 for tests: initdb in a temp dir, unix socket only, started as `postgres`.

We run as root and postgres refuses to, so the data directory belongs to the `postgres` system
user and every server command goes through ``runuser -u postgres --``. The fixtures `pg_server` (one
per session) and `pg_dsn` (its emptied database) are in conftest.py:

    def test_x(pg_dsn): store = PgStore(pg_dsn)
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def pg_missing_reason() -> str | None:
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        return f"PostgreSQL binaries not found in {PG_BIN} (apt-get install postgresql-15)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no 'postgres' system user to run the server as"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser is missing; cannot start postgres as a non-root user"
    return None


class PgServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cc-pg-"))
        self.data = self.dir / "data"
        self.port = 5432        # no TCP (listen_addresses=''): it only names the socket in this server's own dir
        self.log = self.dir / "postgres.log"
        user = pwd.getpwnam("postgres")
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def _run(self, exe: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        cmd = [str(PG_BIN / exe), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, timeout=60)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.dir}&port={self.port}"

    def start(self) -> PgServer:
        # fsync off: an immediate stop loses nothing the OS already has, and the tests are fast.
        # synchronous_commit stays on: a commit the writer saw must survive a server crash.
        opts = f"-k {self.dir} -p {self.port} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def reset(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS cdr_calls, cdr_legs, cdr_events, cdr_rollup, cdr_rollup_dirty, cdr_meta")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
