"""Client CPU of a call's snapshot with its open-call mark (issue 11): how the mark travels.

The worker's loop thread pays each Redis command's client work (packing, the pool, the write, the reply's
wake-up). A call's first and final snapshots carry routing's open-call mark (``rt:w:{w}:open``). Three ways,
timed with ``time.thread_time`` over ``--n`` snapshots, one at a time and ``--concurrency`` at once (calls in
parallel, whose appends the client's group commit sends together), against an embedded redis-server:

- ``hset, xadd``: two commands, one after the other (before session 6);
- ``pipeline``: redis-py's non-transactional pipeline of the two;
- ``together``: ``LoopRedis.send_together``, the buffer's way now (``CdrBuffer.write(..., mark=...)``);
- ``xadd``: the snapshot alone, for scale.

Run: .venv/bin/python bench/append_cost.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from callcenter.cdr.buffer import CdrBuffer, OpenMark, Write, encode
from callcenter.cdr.record import CallRecord
from callcenter.redis_server import EmbeddedRedis
from callcenter.redisconn import LoopRedis, connect

KEY = "cc:rt:w:w1:open"


async def run(url: str, n: int, concurrency: int, rounds: int) -> None:
    r = connect(url)
    assert isinstance(r, LoopRedis)
    buf = CdrBuffer(r)
    fields = encode("call", CallRecord("c" * 32, "inbound", "0901234567", "1900", 1.0, worker_id="w1").to_dict())

    async def sequential(i: int) -> None:
        await r.hset(KEY, f"c{i}", "inbound")
        await r.xadd(buf.stream, fields)

    async def pipeline(i: int) -> None:
        async with r.pipeline(transaction=False) as pipe:
            pipe.hset(KEY, f"c{i}", "inbound")
            pipe.xadd(buf.stream, fields)
            await pipe.execute()

    async def together(i: int) -> None:
        await buf._send(Write(fields, OpenMark(KEY, f"c{i}", "inbound")))

    async def xadd(i: int) -> None:
        await r.xadd(buf.stream, fields)

    ways: dict[str, Callable[[int], Awaitable[None]]] = {
        "hset, xadd": sequential, "pipeline": pipeline, "together": together, "xadd": xadd}
    for conc in (1, concurrency):
        best: dict[str, float] = {}
        for _ in range(rounds):
            for name, way in ways.items():
                t0 = time.thread_time()
                for j in range(0, n, conc):
                    await asyncio.gather(*(way(j + k) for k in range(conc)))
                best[name] = min(best.get(name, 1e9), (time.thread_time() - t0) / n * 1e6)
                await r.delete(buf.stream, KEY)
        print(f"concurrency {conc:2d}: " + "  ".join(f"{k} {v:5.1f} us" for k, v in best.items()), flush=True)
    await r.aclose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="snapshots per way and round")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3, help="the best of this many rounds")
    args = ap.parse_args()
    server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="append-cost-"))).start()
    try:
        asyncio.run(run(server.url, args.n, args.concurrency, args.rounds))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
