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

Redis Sentinel: a ``redis+sentinel://[[user]:password@]host:port,host:port/master_name[/db]`` URL (the
config's ``redis.sentinels`` + ``redis.master_name`` are written as one) gives a client that asks the
sentinels for the master before each new connection. After a failover the demoted master's connections are
closed by Sentinel (or it is dead), a write on a demoted master answers READONLY: either way the command is
retried, with the same backoff, on a connection to the master the sentinels now name. Both kinds of client
also leave the old master as soon as the sentinels announce the switch (``_Announcements``). What a retry
means for a command the old master ran but whose reply was lost is in HACKING.md ("Redis failover").

Durable writes: ``?wait_replicas=N&wait_ms=T`` on either kind of URL (``redis.wait_replicas``,
``redis.wait_ms``) is what :func:`durability` tells the writers that must survive a failover (they send
``WAIT N T`` on the same connection, right after the write: :func:`durable`, :func:`durable_all`), and makes
every batch of appends of :class:`LoopRedis` durable. The URLs' grammar: :mod:`callcenter.redisurl`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, cast

import redis
import redis.asyncio as aredis
import redis.asyncio.sentinel as asentinel
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.retry import Retry
from redis.typing import EncodableT

from callcenter import logs
from callcenter.redisurl import Durability, SentinelTarget, is_sentinel, parse_sentinel, split_url

# A worker's calls share one asyncio pool. Past this many connections a command *waits* for a free one
# (up to POOL_WAIT s) instead of failing at once, which is what redis-py's default pool does.
POOL_SIZE = 256
POOL_WAIT = 10.0


def retry_kwargs(aio: bool = False) -> dict[str, Any]:
    """redis-py settings under which a client rides out a Redis restart (AOF keeps the state) or a
    failover. ``aio``: for an asyncio client, whose connections need the asyncio ``Retry`` (the sync
    one's ``call_with_retry`` returns the command's coroutine unawaited, so nothing would be retried)."""
    return {
        "retry": (AsyncRetry if aio else Retry)(ExponentialBackoff(cap=1.0, base=0.05), retries=40),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError],
        "health_check_interval": 10,
        "socket_connect_timeout": 2.0,
    }


def _settings(ride_out_restarts: bool, options: dict[str, Any], aio: bool = False) -> dict[str, Any]:
    return {**(retry_kwargs(aio) if ride_out_restarts else {}), **options, "decode_responses": True}


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


async def _reply(conn: Any) -> Any:
    """The next reply on ``conn``; a command's own error reply comes as its exception (the connection is
    fine), a failing connection raises."""
    try:
        return await conn.read_response()
    except ResponseError as exc:
        return exc


def _hand(fut: asyncio.Future[Any], reply: Any) -> None:
    """Give a caller waiting on ``fut`` its reply, or its command's error."""
    if fut.done():
        return
    if isinstance(reply, ResponseError):
        fut.set_exception(reply)
    else:
        fut.set_result(reply)


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
    may). Only XADD without options is grouped: it neither blocks nor reads (and what
    :meth:`send_together` is given).

    Durable (the URL's ``wait_replicas``): each batch is followed by one ``WAIT`` on its connection, and
    its callers have their replies once a replica has the batch (:meth:`_send_durably`)."""

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
            if durability(self).replicas:     # alone, as a batch of one: it waits for the replicas too
                fut = asyncio.get_running_loop().create_future()
                await self._send_durably([(args, fut)])
                return await fut
            return await super().execute_command(*args)
        finally:
            self._send_waiting()

    async def send_together(self, *commands: tuple[EncodableT, ...]) -> list[object]:
        """Write commands that neither block nor read what others wait on (an append and the hash field
        that goes with it) in one write, in their order, as one group of the appends' group commit: with
        the batch on its way if there is one. Their raw replies (no response callbacks); the first error
        is raised, once every command has its reply. A snapshot with its open-call mark this way
        costs ~25% less client CPU than a redis-py pipeline of the two or the two one after the other
        (bench/append_cost.py; bench/RESULTS.md, "Session 6")."""
        loop = asyncio.get_running_loop()
        batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = [(args, loop.create_future()) for args in commands]
        if self._appending:
            self._appends.extend(batch)
        else:
            self._appending = True
            try:
                await self._send_batch(batch)
            finally:
                self._send_waiting()
        replies: list[object] = []
        error: Exception | None = None
        for _, fut in batch:
            try:
                replies.append(await fut)
            except Exception as exc:   # noqa: BLE001 - every reply is awaited; the first error is raised
                error = error or exc
        if error is not None:
            raise error
        return replies

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
        self._batches += 1
        if durability(self).replicas:
            await self._send_durably(batch)
            return
        pool = self.connection_pool
        done = 0
        try:
            conn = await pool.get_connection()
            try:
                await conn.send_packed_command(conn.pack_commands([args for args, _ in batch]))
                for _, fut in batch:
                    reply = await _reply(conn)
                    done += 1
                    _hand(fut, reply)
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

    async def _send_durably(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        """The batch and one ``WAIT`` on one connection (:func:`durable_all`): each caller has its reply once
        the replicas have its append, or once it stands without them (a replica down); a batch that went to
        a master replaced before a replica had it is sent again on the new one (each CDR record written twice
        is harmless: see :func:`durable_all`); a connection that fails sends the whole batch again."""
        try:
            replies = await durable_all(self, [args for args, _ in batch], resend=RESEND)
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception)
                                      else RedisConnectionError(f"append not sent: {exc!r}"))
            if not isinstance(exc, Exception):     # cancelled (loop shutdown)
                raise
            return
        for (_, fut), reply in zip(batch, replies, strict=True):
            _hand(fut, reply)

    async def _alone(self, args: tuple[Any, ...], fut: asyncio.Future[Any]) -> None:
        try:
            reply = await super().execute_command(*args)
        except Exception as exc:     # noqa: BLE001 - the caller's own error, handed to it
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(reply)


_DURABILITY = "cc_durability"


def durability(client: aredis.Redis | redis.Redis) -> Durability:
    """What a write that must survive a failover asks of this client's Redis (its URL's wait_* options)."""
    got = getattr(client.connection_pool, _DURABILITY, None)
    return got if isinstance(got, Durability) else Durability()


def _sentinel_kwargs(target: SentinelTarget, settings: dict[str, Any]) -> dict[str, Any]:
    """How the sentinels themselves are asked: quickly, the next one tried when one does not answer."""
    timeout = settings.get("socket_connect_timeout") or 2.0
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout, "password": target.sentinel_password,
            "decode_responses": True}


def _master_kwargs(target: SentinelTarget) -> dict[str, Any]:
    return {"db": target.db, "username": target.username, "password": target.password}


class _SentinelConnection(_QuickSend, asentinel.SentinelManagedConnection):
    """redis-py (8.1) asks the sentinels only when the pool makes a connection (``connect``); a command that
    reconnects after an error (its retry) goes through ``connect_check_health`` to the address it had, the
    demoted or dead master, until the retries run out. Here every (re)connection asks first."""

    async def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if not self.is_connected and self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super().connect_check_health(check_health, retry_socket_connect)


class _SyncSentinelConnection(redis.sentinel.SentinelManagedConnection):
    """The synchronous twin of :class:`_SentinelConnection` (same redis-py gap)."""

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if not self.is_connected and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(check_health, retry_socket_connect)


class _Follower(Protocol):
    def switched(self) -> None:
        """The sentinels announced a new master: leave the old one (called from the announcements' thread)."""


class _Announcements:
    """The sentinels' ``+switch-master`` announcements of one master, heard by one thread per process (one
    sentinel at a time, the next when it fails) and passed at once to every pool that follows that master,
    asyncio and sync alike (:meth:`SentinelLoopPool.switched`, :meth:`_SyncSentinelPool.switched`): without
    this, connections stay on a demoted master that still takes writes until Sentinel reconfigures it (up to
    ~10 s), and what they write there is lost. The thread ends when no pool follows any more."""

    _lock = threading.Lock()
    _running: ClassVar[dict[tuple[Any, ...], _Announcements]] = {}

    def __init__(self, key: tuple[Any, ...], places: list[dict[str, Any]], service: str) -> None:
        self.key, self.places, self.service = key, places, service
        self.followers: weakref.WeakSet[Any] = weakref.WeakSet()
        self.thread = threading.Thread(target=self._listen, name=f"sentinel-{service}", daemon=True)

    @classmethod
    def follow(cls, pool: _Follower, sentinels: Sequence[Any], service: str) -> None:
        """``pool`` hears of every switch of ``service`` that ``sentinels`` (clients of them) announce."""
        places = [dict(s.connection_pool.connection_kwargs) for s in sentinels]
        key = (service, *((kw["host"], kw["port"], kw.get("password")) for kw in places))
        with cls._lock:
            ann = cls._running.get(key)
            fresh = ann is None
            if ann is None:
                ann = cls._running[key] = cls(key, places, service)
            ann.followers.add(pool)
        if fresh:
            ann.thread.start()

    @classmethod
    def unfollow(cls, pool: _Follower) -> None:
        with cls._lock:
            for ann in cls._running.values():
                ann.followers.discard(pool)

    def _wanted(self) -> bool:
        with self._lock:
            if len(self.followers):
                return True
            if self._running.get(self.key) is self:
                del self._running[self.key]
            return False

    def _tell(self) -> None:
        with self._lock:
            followers = list(self.followers)
        for pool in followers:
            pool.switched()

    def _listen(self) -> None:
        log = logs.get("redis", master=self.service)
        for turn in itertools.count():
            if not self._wanted():
                return
            kw = self.places[turn % len(self.places)]
            listener = redis.Redis(host=kw["host"], port=kw["port"], password=kw.get("password"),
                                   decode_responses=True, socket_connect_timeout=2.0, socket_timeout=5.0)
            try:
                with listener.pubsub() as ps:
                    ps.subscribe("+switch-master")
                    self._tell()          # a switch announced before we listened
                    while self._wanted():
                        msg = ps.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if msg and str(msg["data"]).split(" ")[0] == self.service:
                            log.warning("redis master switched", announce=str(msg["data"]))
                            self._tell()
            except (redis.RedisError, OSError) as exc:
                log.warning("sentinel announcements unreachable", sentinel=f"{kw['host']}:{kw['port']}",
                            error=str(exc))
                time.sleep(1.0)
            finally:
                listener.close()


class SentinelLoopPool(LoopPool, asentinel.SentinelConnectionPool):
    """:class:`LoopPool` (its fast path for an idle, connected connection) over redis-py's Sentinel pool: a
    connection still to be made asks the sentinels where the master is; a master that changed address
    closes the idle connections to the old one; READONLY from a demoted master drops the connection
    (``SentinelManagedConnection``) so that the retry goes to the new one; the sentinels' announcements of
    a switch are followed at once (:class:`_Announcements`)."""

    _loop: asyncio.AbstractEventLoop | None = None
    _following: asyncio.Task[bool] | None = None

    async def get_master_address(self) -> Any:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            _Announcements.follow(self, cast(asentinel.Sentinel, self.sentinel_manager).sentinels, self.service_name)
        return await super().get_master_address()

    def switched(self) -> None:
        """(the announcements' thread) :meth:`follow` on the pool's own loop."""
        try:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._follow_now)
        except RuntimeError:          # the loop is closed: nothing left to follow for
            _Announcements.unfollow(self)

    def _follow_now(self) -> None:
        self._following = asyncio.ensure_future(self._follow_logged())

    async def _follow_logged(self) -> bool:
        try:
            return await self.follow()
        except (redis.RedisError, OSError) as exc:    # no sentinel answers: the next command's connect asks
            logs.get("redis", master=self.service_name).warning("sentinels not answering", error=str(exc))
            return False

    async def release(self, connection: Any) -> None:
        if self.master_address is not None and (connection.host, connection.port) != self.master_address:
            await connection.disconnect()     # made before the master moved: reconnects to the new one
        await super().release(connection)

    async def follow(self) -> bool:
        """Ask the sentinels where the master is now; True if it moved (the idle connections to the old
        one are closed at once, those in use as they come back)."""
        before = self.master_address
        return before is not None and await self.get_master_address() != before

    async def moved_from(self, where: tuple[Any, Any]) -> bool:
        """Whether the sentinels name a master other than ``where`` (the one a write went to). While a
        sentinel says a failover is under way, asked again until it is over (at most FAILOVER_WAIT s): in
        a planned ``SENTINEL FAILOVER`` the old master takes writes for ~1 s after the replica's promotion,
        before the sentinels name the new one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FAILOVER_WAIT
        while True:
            if tuple(await self.get_master_address()) != tuple(where):
                return True
            if loop.time() >= deadline or not await self._failing_over():
                return False
            await asyncio.sleep(0.05)

    async def _failing_over(self) -> bool:
        """A sentinel reports a failover of this master under way (only the one leading it does)."""
        manager = cast(asentinel.Sentinel, self.sentinel_manager)
        states = await asyncio.gather(*(s.sentinel_master(self.service_name) for s in manager.sentinels),
                                      return_exceptions=True)
        return any(isinstance(st, dict) and "failover_in_progress" in str(st.get("flags", "")) for st in states)

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        if inuse_connections:   # the client closes: the sentinels' own connections go too
            _Announcements.unfollow(self)
            await cast(asentinel.Sentinel, self.sentinel_manager).aclose()


class _SyncSentinelPool(redis.sentinel.SentinelConnectionPool):
    """redis-py's sync Sentinel pool, following the sentinels' announcements (:class:`_Announcements`) as
    :class:`SentinelLoopPool` does: the /metrics collector's and the API threads' reads and writes leave a
    demoted master at the announcement, not when Sentinel reconfigures it."""

    def switched(self) -> None:
        try:
            self.get_master_address()     # a new address closes the idle connections; those in use on release
        except (redis.RedisError, OSError) as exc:
            logs.get("redis", master=self.service_name).warning("sentinels not answering", error=str(exc))

    def disconnect(self, inuse_connections: bool = True) -> None:
        super().disconnect(inuse_connections)
        if inuse_connections:
            _Announcements.unfollow(self)


FAILOVER_WAIT = 5.0     # s a durable write waits, at most, for a failover under way to name the new master
RESEND = 2              # times a durable batch of appends goes again to a new master


class WriteNotReplicated(redis.ConnectionError):
    """A durable write the master took but no replica acknowledged in time, and the sentinels now name
    another master: the write is probably lost with the old one. Retry it if it is idempotent."""


async def _exchange(conn: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Send the commands in one write and read their replies (a command's error reply as its exception)."""
    await conn.send_packed_command(conn.pack_commands(commands))
    return [await _reply(conn) for _ in commands]


async def _round_trip(pool: Any, commands: Sequence[tuple[Any, ...]]) -> tuple[list[Any], tuple[Any, Any]]:
    """:func:`_exchange` on a connection of the pool, again whole (the connection's retries) when it fails;
    the replies and the address of the Redis that gave them."""
    conn = await pool.get_connection()
    try:
        replies: list[Any] = await conn.retry.call_with_retry(functools.partial(_exchange, conn, commands),
                                                              lambda _error: conn.disconnect())
        return replies, (getattr(conn, "host", None), getattr(conn, "port", None))
    finally:
        await pool.release(conn)


async def durable_all(client: aredis.Redis, commands: Sequence[tuple[Any, ...]], resend: int = 0) -> list[Any]:
    """Run write commands and ``WAIT`` for the replicas the client's URL asks for (:func:`durability`) in
    one round trip on one connection (sent again whole, with the client's retries, when the connection
    fails); their replies, a command's error reply as its exception object. Fewer acknowledgements than
    asked: under Sentinel, if the master moved meanwhile (or does so at the end of a failover under way:
    :meth:`SentinelLoopPool.moved_from`), the commands are run again on the new master up to ``resend``
    times, then :class:`WriteNotReplicated`; otherwise (the replica is down or slow) they stand, logged,
    and the site goes on without the guarantee: the next durable writes wait 1 ms only (a down replica
    must not add ``wait_ms`` to every routing decision) until one is acknowledged.

    A resent batch of CDR appends is harmless however often it lands: the writer delivers each stream entry
    to the store, which upserts calls and legs by id merging by ``version`` and inserts queue events by
    ``event_id`` once (cdr/store.py: ``CALL_UPSERT``, ``LEG_UPSERT``, ``EVENT_INSERT``)."""
    want = durability(client)
    pool = client.connection_pool
    for attempt in itertools.count():
        short = getattr(pool, _SHORT, False)   # the last WAIT went short: a replica down, do not stall each write
        wait = ("WAIT", want.replicas, 1 if short else want.timeout_ms)
        (*replies, acks), where = await _round_trip(pool, [*commands, wait])
        if isinstance(acks, Exception):
            raise acks
        if await _stands(pool, want, short, int(acks), where, str(commands[0][0])):
            return replies
        if attempt >= resend:
            raise WriteNotReplicated(f"{commands[0][0]} went to a master that has since been replaced")
    raise AssertionError("unreachable")


async def _stands(pool: Any, want: Durability, short: bool, acks: int, where: tuple[Any, Any], what: str) -> bool:
    """Whether a write whose WAIT counted ``acks`` counts: acknowledged as asked, or short on a master that
    is still the one (logged the first time); False if the master it went to has been replaced."""
    setattr(pool, _SHORT, acks < want.replicas)
    if acks >= want.replicas:
        if short:
            logs.get("redis").info("writes acknowledged by a replica again")
        return True
    if isinstance(pool, SentinelLoopPool) and await pool.moved_from(where):
        return False
    if not short:
        logs.get("redis").warning("writes not acknowledged by a replica (they stand; the next ones wait "
                                  "1 ms until one is)", command=what, acks=acks, wanted=want.replicas,
                                  wait_ms=want.timeout_ms)
    return True


async def durable(client: aredis.Redis, *command: Any) -> Any:
    """Run one write command as :func:`durable_all` does (without a durability asked: as it is); its reply.
    Its master replaced before a replica had it: :class:`WriteNotReplicated` (the caller runs it again if
    it is idempotent: routing/scripts.RERUN, dialer/scripts.run_durable)."""
    if not durability(client).replicas:
        return await client.execute_command(*command)
    reply = (await durable_all(client, [command]))[0]
    if isinstance(reply, Exception):
        raise reply
    return reply


_SHORT = "cc_wait_short"


def connect(url: str, *, ride_out_restarts: bool = True, max_connections: int = POOL_SIZE,
            **options: Any) -> aredis.Redis:
    """An asyncio client (:class:`LoopRedis`) on a blocking pool of ``max_connections`` (:class:`LoopPool`,
    :class:`SentinelLoopPool` for a ``redis+sentinel://`` URL); closing the client closes the pool.
    ``options`` are redis-py connection settings (``socket_timeout=1``...)."""
    plain, durable = split_url(url)
    settings = _settings(ride_out_restarts, options, aio=True)
    pool: LoopPool
    if is_sentinel(plain):
        target = parse_sentinel(plain)
        manager = asentinel.Sentinel(target.sentinels, sentinel_kwargs=_sentinel_kwargs(target, settings))
        pool = SentinelLoopPool(service_name=target.master, sentinel_manager=manager,
                                max_connections=max_connections, timeout=POOL_WAIT,
                                connection_class=_SentinelConnection, **_master_kwargs(target), **settings)
    else:
        pool = LoopPool.from_url(plain, max_connections=max_connections, timeout=POOL_WAIT, **settings)
    setattr(pool, _DURABILITY, durable)
    return LoopRedis.from_pool(pool)


def connect_sync(url: str, *, ride_out_restarts: bool = True, **options: Any) -> redis.Redis:
    """A synchronous client (thread-safe pool: the /metrics collector reads from Twisted's threads)."""
    plain, durable = split_url(url)
    settings = _settings(ride_out_restarts, options)
    if is_sentinel(plain):
        target = parse_sentinel(plain)
        manager = redis.sentinel.Sentinel(target.sentinels, sentinel_kwargs=_sentinel_kwargs(target, settings))
        client: redis.Redis = manager.master_for(target.master, connection_class=_SyncSentinelConnection,
                                                 connection_pool_class=_SyncSentinelPool,
                                                 **_master_kwargs(target), **settings)
        _Announcements.follow(cast(_SyncSentinelPool, client.connection_pool), manager.sentinels, target.master)
    else:
        client = redis.Redis.from_url(plain, **settings)
    setattr(client.connection_pool, _DURABILITY, durable)
    return client
