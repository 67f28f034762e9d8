"""Redis clients: every one the package (and its tests and benchmarks) makes comes from here, and every
one decodes replies to ``str``.

Nothing the package keeps in Redis is binary: keys, hash fields, stream entries, Lua replies are UTF-8
text (JSON where structured). So one kind of client serves every module, and no module needs to ask
whether a reply is bytes or str. A value that must ever be binary (raw audio, a pickle) gets a client of
its own, made here and named for it.

    client = connect(url)        # asyncio: the worker, the API, the CLIs
    sync = connect_sync(url)     # threads: wallboard and /metrics reads at scrape time, tools, tests

By default both ride out a Redis restart (commands retry with backoff for ~40 s, AOF keeps the state).
Tools that should say at once that Redis is not there pass ``ride_out_restarts=False``.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import redis
import redis.asyncio as aredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.retry import Retry

# A worker's calls share one asyncio pool. Past this many connections a command *waits* for a free one
# (up to POOL_WAIT s) instead of failing at once, which is what redis-py's default pool does.
POOL_SIZE = 256
POOL_WAIT = 10.0


def retry_kwargs() -> dict[str, Any]:
    """redis-py settings under which a client rides out a Redis restart (AOF keeps the state)."""
    return {
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=40),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError],
        "health_check_interval": 10,
        "socket_connect_timeout": 2.0,
    }


def _settings(ride_out_restarts: bool, options: dict[str, Any]) -> dict[str, Any]:
    return {**(retry_kwargs() if ride_out_restarts else {}), **options, "decode_responses": True}


class _QuickSend:
    """A connection whose command, once the kernel has taken all of it, returns at once: redis-py wraps
    every send in ``asyncio.wait_for(..., socket_timeout)`` (a task per command) to bound a drain that
    almost never waits. Only a send that leaves bytes buffered (Redis not reading) waits for the drain,
    the library's way, timeout and errors included; the reply's read keeps its timeout either way."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        conn = cast(aredis.Connection, self)
        writer = conn._writer
        if (writer is None or not isinstance(command, list) or writer.transport.is_closing()
                or (check_health and conn.health_check_interval
                    and asyncio.get_running_loop().time() > conn.next_health_check)):
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        writer.writelines(command)
        if writer.transport.get_write_buffer_size():
            await super().send_packed_command([], check_health=False)  # type: ignore[misc]


class _Connection(_QuickSend, aredis.Connection):
    pass


class _UnixConnection(_QuickSend, aredis.UnixDomainSocketConnection):
    pass


class _SSLConnection(_QuickSend, aredis.SSLConnection):
    pass


_QUICK: dict[type, type] = {aredis.Connection: _Connection, aredis.UnixDomainSocketConnection: _UnixConnection,
                            aredis.SSLConnection: _SSLConnection}


def _quiet(conn: Any) -> bool:
    """An idle connection is ready for a command: connected, nothing unread and no end of stream seen (a
    restarted Redis closed it). What the library finds out by a zero-timeout read, the loop has already
    told the connection's StreamReader; anything else goes the library's way (it reconnects)."""
    reader = conn._reader
    return (reader is not None and conn._writer is not None and not reader.at_eof()
            and reader.exception() is None and not getattr(reader, "_buffer", True))


class LoopPool(aredis.BlockingConnectionPool):
    """redis-py's blocking pool with a fast path for what nearly every command of a worker finds: an
    idle, connected connection, taken and given back by plain list operations on the loop thread.

    redis-py (8.x) otherwise takes the pool's condition and a timeout context, checks the socket for
    unread data (a read with a zero timeout), records observability counters and dispatches a released
    event per command: about half of a command's client CPU on the worker's loop (bench/RESULTS.md,
    "Per-call cost"). What the fast path leaves out is not needed here: one event loop owns the pool (no
    lock to take), a command that fails or is cancelled mid-reply disconnects its connection (redis-py
    does so in ``send_packed_command``/``read_response``), and a connection the server closed is seen
    closed by its StreamReader (:func:`_quiet`), so the library's zero-timeout read finds nothing; our clients have no streaming credential provider (the released event's re-auth) and no
    maintenance notifications (``_in_maintenance``). Everything else, a connection still to be made or
    tasks waiting for one, goes the library's way."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = kwargs.get("connection_class", aredis.Connection)
        kwargs["connection_class"] = _QUICK.get(cls, cls)
        super().__init__(*args, **kwargs)
        # with a credential provider the released event re-authenticates: always the library's way then
        self._fast = self.connection_kwargs.get("credential_provider") is None

    async def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> Any:
        idle = self._available_connections
        if self._fast and idle and _quiet(idle[-1]) and not self._in_maintenance:
            conn = idle.pop()
            self._in_use_connections.add(conn)
            return conn
        return await super().get_connection()

    async def release(self, connection: Any) -> None:
        if (self._fast and not self._in_maintenance and not connection.should_reconnect()
                and not self._waiting() and connection in self._in_use_connections):
            self._in_use_connections.remove(connection)
            self._available_connections.append(connection)
            return
        await super().release(connection)

    def _waiting(self) -> bool:
        """Tasks wait for a connection (asyncio.Condition keeps its waiters in ``_waiters``; if a future
        redis-py or Python hides them, assume there are: the library's release then notifies them)."""
        waiters = getattr(self._condition, "_waiters", None)
        return waiters is None or len(waiters) > 0


class LoopRedis(aredis.Redis):
    """The asyncio client, whose stream appends (XADD) share round trips: while one is on its way to Redis,
    the XADDs other tasks issue meanwhile wait and then go together, packed into one write on one
    connection, each reply read back to its caller (a group commit). A worker appends ~8 records a call
    (CDR snapshots, legs, queue events) from many concurrent calls: under load most of them travel with
    others instead of each taking a pool checkout, a send and a reply wake-up of its own.

    Each caller still gets its own reply (the entry id, or its own error) only once Redis has it, so
    what an ``await xadd`` promises is unchanged; a task's own appends stay in its order, and those of
    different tasks were never ordered. When the batch's connection fails, the appends whose replies did
    not come are sent again one by one, each as it would have gone alone (with the client's retries; an
    append Redis took before the connection broke may then be written twice, as a retried single one
    may). Only XADD without options is grouped: it neither blocks nor reads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._appending = False    # an XADD (alone or a batch) is on its way
        self._appends: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []   # waiting for it
        self._sender: asyncio.Task[None] | None = None
        self._batches = 0          # batches sent (tests, benchmarks)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if args[0] != "XADD" or options or self.single_connection_client:
            return await super().execute_command(*args, **options)
        if self._appending:
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._appends.append((args, fut))
            return await fut
        self._appending = True
        try:
            return await super().execute_command(*args)
        finally:
            self._send_waiting()

    def _send_waiting(self) -> None:
        """The append on its way is done: send what waited meanwhile, else let the next one go alone."""
        if self._appends:
            self._sender = asyncio.ensure_future(self._send_batches())
        else:
            self._appending = False

    async def _send_batches(self) -> None:
        try:
            while self._appends:
                batch, self._appends = self._appends, []
                await self._send_batch(batch)
        finally:
            self._appending = False
            self._sender = None
            if self._appends:      # only if the sender itself was cancelled (loop shutdown)
                self._send_waiting()

    async def _send_batch(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        pool = self.connection_pool
        self._batches += 1
        done = 0
        try:
            conn = await pool.get_connection()
            try:
                await conn.send_packed_command(conn.pack_commands([args for args, _ in batch]))
                for _, fut in batch:
                    try:
                        reply: Any = await conn.read_response()
                    except ResponseError as exc:     # this command's own error; the connection is fine
                        reply = exc
                    done += 1
                    if fut.done():
                        continue
                    if isinstance(reply, ResponseError):
                        fut.set_exception(reply)
                    else:
                        fut.set_result(reply)
            finally:
                await pool.release(conn)
        except Exception:  # noqa: BLE001 - the connection failed (read_response has disconnected it)
            # what is left goes one by one, each the way it would have gone alone (retries included)
            await asyncio.gather(*(self._alone(args, fut) for args, fut in batch[done:]))
        except BaseException as exc:     # cancelled (loop shutdown): nothing more is sent
            for _, fut in batch[done:]:
                if not fut.done():
                    fut.set_exception(RedisConnectionError(f"append not sent: {exc!r}"))
            raise

    async def _alone(self, args: tuple[Any, ...], fut: asyncio.Future[Any]) -> None:
        try:
            reply = await super().execute_command(*args)
        except Exception as exc:     # noqa: BLE001 - the caller's own error, handed to it
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(reply)


def connect(url: str, *, ride_out_restarts: bool = True, max_connections: int = POOL_SIZE,
            **options: Any) -> aredis.Redis:
    """An asyncio client (:class:`LoopRedis`) on a blocking pool of ``max_connections`` (:class:`LoopPool`);
    closing the client closes the pool. ``options`` are redis-py connection settings (``socket_timeout=1``...)."""
    pool = LoopPool.from_url(url, max_connections=max_connections, timeout=POOL_WAIT,
                             **_settings(ride_out_restarts, options))
    return LoopRedis.from_pool(pool)


def connect_sync(url: str, *, ride_out_restarts: bool = True, **options: Any) -> redis.Redis:
    """A synchronous client (thread-safe pool: the /metrics collector reads from Twisted's threads)."""
    return redis.Redis.from_url(url, **_settings(ride_out_restarts, options))
