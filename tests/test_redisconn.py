"""The worker's Redis client (callcenter.redisconn.connect): its pool's fast path hands out only a
connection that is ready for a command, against a real redis-server."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError, ResponseError

from callcenter.redisconn import LoopPool, LoopRedis, connect, connect_sync


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


def test_concurrent_appends_travel_together_each_with_its_own_reply(redis_url: str) -> None:
    """XADDs issued while one is on its way go in one batch: every caller gets its own entry id, a
    task's appends keep its order, and one command's error is that caller's alone."""
    async def main() -> None:
        client = connect(redis_url, ride_out_restarts=False)
        assert isinstance(client, LoopRedis)
        try:
            await client.set("not-a-stream", "x")

            async def appender(n: int) -> list[str]:
                return [await client.xadd("s", {"task": str(n), "i": str(i)}) for i in range(20)]

            async def wrong() -> str:
                try:
                    await client.xadd("not-a-stream", {"a": "b"})
                except ResponseError as exc:
                    return str(exc)
                return "no error"

            *ids, err = await asyncio.gather(*(appender(n) for n in range(10)), wrong())
            assert "WRONGTYPE" in err
            entries = await client.xrange("s")
            by_id = dict(entries)
            assert len(entries) == 200
            for n, task_ids in enumerate(ids):     # each caller's reply is its own entry, in its order
                assert [by_id[i] for i in task_ids] == [{"task": str(n), "i": str(i)} for i in range(20)]
            assert client._batches > 0     # some went together
        finally:
            await client.aclose()
    asyncio.run(main())


def test_appends_of_a_batch_whose_connection_dies_fail_and_the_next_ones_go_through(redis_url: str) -> None:
    async def main() -> None:
        client = connect(redis_url, ride_out_restarts=False)
        admin = connect_sync(redis_url, ride_out_restarts=False)
        try:
            await client.xadd("s", {"a": "0"})
            # every client connection killed while appends are on their way
            results = await asyncio.gather(*(client.xadd("s", {"a": str(i)}) for i in range(1, 30)),
                                           asyncio.to_thread(admin.client_kill_filter, _type="normal",
                                                             skipme=True), return_exceptions=True)
            failed = [r for r in results[:-1] if isinstance(r, Exception)]
            assert all(isinstance(r, RedisError) for r in failed), failed
            assert await client.xadd("s", {"a": "after"})
            assert 1 + 29 - len(failed) + 1 <= await client.xlen("s") <= 1 + 29 + 1   # a lost reply may still have been written
        finally:
            admin.close()
            await client.aclose()
    asyncio.run(main())


def test_commands_sent_together_go_in_order_alone_or_with_the_batch_on_its_way(redis_url: str) -> None:
    """send_together: the commands of a group reach Redis in their order, in one write of their own or
    joined to the appends' batch in flight; each group gets its own replies, a failing command raises
    for its group only, once the group's other commands are done."""
    async def main() -> None:
        client = connect(redis_url, ride_out_restarts=False)
        assert isinstance(client, LoopRedis)
        try:
            assert await client.send_together(("HSET", "h", "alone", "1"), ("XADD", "s", "*", "k", "alone")) \
                == [1, (await client.xrange("s"))[-1][0]]

            async def group(n: int) -> list[object]:
                return await client.send_together(("HSET", "h", f"g{n}", "1"), ("XADD", "s", "*", "k", str(n)),
                                                  ("HDEL", "h", f"g{n}"))

            batches = client._batches
            appends = [client.xadd("s", {"k": f"x{i}"}) for i in range(5)]
            replies = await asyncio.gather(*appends, *(group(n) for n in range(10)))
            assert 1 <= client._batches - batches < 10     # the groups went with the appends' batch, not one by one
            for n, got in enumerate(replies[5:]):
                assert isinstance(got, list) and got[0] == 1 and got[2] == 1
                assert dict(await client.xrange("s", min=str(got[1]), max=str(got[1])))[str(got[1])] == {"k": str(n)}
            assert await client.hgetall("h") == {"alone": "1"}
            await client.set("not-a-hash", "x")
            try:
                await client.send_together(("HSET", "not-a-hash", "f", "1"), ("XADD", "s", "*", "k", "after-error"))
                raise AssertionError("no error")
            except ResponseError as exc:
                assert "WRONGTYPE" in str(exc)
            assert (await client.xrange("s"))[-1][1] == {"k": "after-error"}    # the rest of the group went
        finally:
            await client.aclose()
    asyncio.run(main())
