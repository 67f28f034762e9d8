"""PostgreSQL: the production store (psycopg 3). Reconnects after an outage; the writer retries."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from callcenter import logs
from callcenter.cdr.store import Cursor, SqlStore, StoreUnavailable

if TYPE_CHECKING:
    import psycopg

log = logs.get("cdr.pg")


@functools.lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as PostgreSQL's own ``$1``, ``$2``, ...: a raw cursor sends the query
    as it is. psycopg's ``%s`` query parse, which it caches only under 4 KiB, took a third of the CDR writer's
    CPU on PostgreSQL (the call upsert is ~7 KiB; bench/cdr_writer_cost.py)."""
    head, *rest = sql.split("?")
    return head + "".join(f"${i}{part}" for i, part in enumerate(rest, 1))


class PgStore(SqlStore):
    placeholder = "$n"
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
            self._conn = self._psycopg.connect(self.dsn, autocommit=True, cursor_factory=self._psycopg.RawCursor,
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

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """The connection (made again after an outage), the lock held; a lost server as StoreUnavailable."""
        with self._lock:
            conn = self._connect()
            try:
                yield conn
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError) as exc:
                raise self._broken(exc) from exc

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        with self._connection() as conn:
            return conn.execute(sql, params if params else None)

    def _execute_many(self, sql: str, rows: list[list[Any]]) -> None:
        with self._connection() as conn:
            conn.cursor().executemany(sql, rows)   # pipelined: one round trip for the rows

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._connection() as conn, conn.transaction():
            yield

    def _sql(self, sql: str) -> str:
        return numbered(sql)

    def _floor_div(self, expr: str, size: int) -> str:
        return f"FLOOR(({expr}) / {size})"

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
