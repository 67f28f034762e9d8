"""PostgreSQL: the production store (psycopg 3). Reconnects after an outage; the writer retries."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from callcenter import logs
from callcenter.cdr.store import Cursor, SqlStore, StoreUnavailable

if TYPE_CHECKING:
    import psycopg

log = logs.get("cdr.pg")


class PgStore(SqlStore):
    placeholder = "%s"
    real_type = "DOUBLE PRECISION"
    int_type = "INTEGER"
    bigint_type = "BIGINT"

    def __init__(self, dsn: str, connect_timeout: float = 5.0) -> None:
        import psycopg  # optional dependency: only the PostgreSQL store needs it

        self._psycopg = psycopg
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._lock = threading.RLock()
        with self._lock:
            conn = self._connect()
            try:   # the server may go away halfway through: that is an outage, not a bug
                with conn.transaction():
                    for stmt in self.schema():
                        conn.execute(stmt)
                self.migrate()
                self._load_rollup_params()
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                raise self._broken(exc) from exc

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            self._conn = self._psycopg.connect(self.dsn, autocommit=True,
                                               connect_timeout=max(1, int(self.connect_timeout)))
        except self._psycopg.OperationalError as exc:
            self._conn = None
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        return self._conn

    def _broken(self, exc: Exception) -> StoreUnavailable:
        with contextlib.suppress(Exception):
            if self._conn is not None:
                self._conn.close()
        self._conn = None
        return StoreUnavailable(f"PostgreSQL unavailable: {exc}")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        with self._lock:
            conn = self._connect()
            try:
                return conn.execute(sql, params if params else None)
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
                raise self._broken(exc) from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            conn = self._connect()
            try:
                with conn.transaction():
                    yield
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
                raise self._broken(exc) from exc

    def _floor_div(self, expr: str, size: int) -> str:
        return f"FLOOR(({expr}) / {size})"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
