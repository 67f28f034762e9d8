"""The worker's Redis client (callcenter.redisconn.connect): its pool's fast path hands out only a
connection that is ready for a command, against a real redis-server."""

from __future__ import annotations

import asyncio

from callcenter.redisconn import LoopPool, connect, connect_sync


def test_more_concurrent_commands_than_connections_all_answer(redis_url: str) -> None:
    async def main() -> None:
        client = connect(redis_url, max_connections=3)
        assert isinstance(client.connection_pool, LoopPool)
        try:
            got = await asyncio.gather(*(client.incr("n") for _ in range(200)))
            assert sorted(got) == list(range(1, 201))
            pool = client.connection_pool
            assert len(pool._available_connections) <= 3 and not pool._in_use_connections
        finally:
            await client.aclose()
    asyncio.run(main())


def test_a_connection_the_server_closed_is_not_reused(redis_url: str) -> None:
    """CLIENT KILL closes the pool's idle connection from the server side (as a restart does): the
    next command goes over a new connection instead of failing on the dead one."""
    async def main() -> None:
        client = connect(redis_url, ride_out_restarts=False)
        try:
            await client.set("k", "v")
            my_id = await client.client_id()
            connect_sync(redis_url, ride_out_restarts=False).client_kill_filter(_id=my_id)
            await asyncio.sleep(0.1)    # the loop reads the end of stream
            assert await client.get("k") == "v"
            assert await client.client_id() != my_id
        finally:
            await client.aclose()
    asyncio.run(main())


def test_a_command_cancelled_before_its_reply_leaves_no_reply_behind(redis_url: str) -> None:
    """A blocked command cancelled while it waits: its late reply must never answer the next command."""
    async def main() -> None:
        client = connect(redis_url, ride_out_restarts=False, max_connections=1)
        try:
            await client.set("k", "v")
            waiting = asyncio.ensure_future(client.blpop(["list"], timeout=2))
            await asyncio.sleep(0.1)
            waiting.cancel()
            await client.rpush("list", "late")     # the cancelled BLPOP would have taken this
            assert await client.get("k") == "v"
            assert await client.lrange("list", 0, -1) == ["late"]
        finally:
            await client.aclose()
    asyncio.run(main())
