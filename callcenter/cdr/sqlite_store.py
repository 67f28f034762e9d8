"""SQLite: the embedded default store. WAL mode so reports can read while the writer writes."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from callcenter.cdr.store import SqlStore, StoreUnavailable
from callcenter.privacy import private_file


class SqliteStore(SqlStore):
    placeholder = "?"

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # The writer and the HTTP report handler use the store from asyncio.to_thread workers;
        # one connection guarded by a lock keeps sqlite3's thread rules simple.
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            for stmt in self.schema():
                self._conn.execute(stmt)
            self.migrate()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from exc
        if self.path != ":memory:":
            # every caller's number is in here: 0640 even when the process umask is wider
            for f in (self.path, f"{self.path}-wal", f"{self.path}-shm"):
                with contextlib.suppress(FileNotFoundError, PermissionError):   # another user's file stays theirs
                    private_file(f)
        self._load_rollup_params()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """The connection, the lock held; errors that mean the file cannot be written now as StoreUnavailable."""
        with self._lock:
            try:
                yield self._conn
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "unable to open" in str(exc) or "disk" in str(exc):
                    raise StoreUnavailable(str(exc)) from exc
                raise

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._connection() as conn:
            return conn.execute(sql, params)

    def _execute_many(self, sql: str, rows: list[list[Any]]) -> None:
        with self._connection() as conn:
            conn.executemany(sql, rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._execute("COMMIT")

    def _floor_div(self, expr: str, size: int) -> str:
        return f"CAST(({expr}) / {size} AS INTEGER)"

    def close(self) -> None:
        with self._lock:
            self._conn.close()
