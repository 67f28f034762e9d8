"""The voicemail index (calls/voicemail.py) on a real redis-server: an entry written twice is one entry,
lists are newest first across boxes and paged, handled moves a message once and keeps who did it, and a
message saved while Redis is down waits in the backlog and lands when Redis is back."""

from __future__ import annotations

import asyncio

from callcenter.calls.voicemail import VoicemailIndex, merge_newest, voicemail_id
from callcenter.redis_server import EmbeddedRedis
from callcenter.redisconn import connect


def test_merge_newest_pages_across_boxes() -> None:
    a = [("a3", 30.0), ("a1", 10.0)]
    b = [("b4", 40.0), ("b2", 20.0)]
    assert merge_newest([a, b], 0, 10) == ["b4", "a3", "b2", "a1"]
    assert merge_newest([a, b], 1, 2) == ["a3", "b2"]
    assert merge_newest([], 0, 5) == []


def test_index_is_idempotent_newest_first_and_handled_once(redis_url: str) -> None:
    async def main() -> None:
        client = connect(redis_url)
        index = VoicemailIndex(client)
        first = await index.saved("c1", "sales", "0901000001", "/d/recordings/c1-f-vm.wav", 4.2, at=100.0)
        again = await index.saved("c1", "sales", "0901000001", "/d/recordings/c1-f-vm.wav", 4.2, at=999.0)
        assert first.id == again.id == voicemail_id("/d/recordings/c1-f-vm.wav")
        got = await index.get(first.id)
        assert got is not None and got.time == 100.0 and got.state == "new" and got.caller == "0901000001"
        await index.saved("c2", "support", "0901000002", "/d/recordings/c2-f-vm.wav", 3.0, at=200.0)
        await index.saved("c3", "sales", "0901000003", "/d/recordings/c3-f-vm.wav", 5.0, at=300.0)
        assert await index.queues() == {"sales", "support"}
        every = await index.list(["sales", "support"], ["new", "handled"])
        assert [v.call_id for v in every] == ["c3", "c2", "c1"]
        assert [v.call_id for v in await index.list(["sales"], ["new"], offset=1, limit=1)] == ["c1"]

        assert await index.handled(first, "sup1") == "ok"
        assert await index.handled(first, "sup2") == "already"
        done = await index.get(first.id)
        assert done is not None and done.state == "handled" and done.handled_by == "sup1" and done.handled_at
        assert [v.call_id for v in await index.list(["sales"], ["new"])] == ["c3"]
        assert [v.call_id for v in await index.list(["sales"], ["handled"])] == ["c1"]
        # handled keeps its place in time
        assert [v.call_id for v in await index.list(["sales", "support"], ["new", "handled"])] == ["c3", "c2", "c1"]
        await client.aclose()

    asyncio.run(main())


def test_saved_while_redis_is_down_lands_when_it_is_back(redis_url: str, redis_server: EmbeddedRedis) -> None:
    async def main() -> None:
        client = connect(redis_url, ride_out_restarts=False, socket_timeout=1)
        index = VoicemailIndex(client)
        redis_server.stop()
        try:
            vm = await index.saved("c9", "sales", "0901000009", "/d/recordings/c9-f-vm.wav", 2.0, at=50.0)
            assert index.waiting == 1
            assert await index.flush() == 1          # still down: kept
        finally:
            redis_server.start()
        assert await index.flush() == 0
        got = await index.get(vm.id)
        assert got is not None and got.call_id == "c9" and got.state == "new"
        await client.aclose()

    asyncio.run(main())
