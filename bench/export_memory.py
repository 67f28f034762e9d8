"""Peak Python memory of a campaign's per-contact results export (dialer/export.results_csv) over N contacts.

    .venv/bin/python bench/export_memory.py --contacts 5000          # a smoke run
    .venv/bin/python bench/export_memory.py --contacts 100000        # the figure for RESULTS.md

A throwaway redis-server (EmbeddedRedis) gets one list of N contacts with three columns of their own, uploaded
the way the API does (parse_csv + import_list); then the export is read to its end the way the HTTP answer does
(each chunk dropped once written), under tracemalloc. Printed: the CSV's size, the peak Python memory the export
allocated, the largest chunk and the rows a second. A bounded export's peak stays near one page whatever N is;
the whole-CSV design it replaces held the CSV text and every contact's hash at once (more than the CSV's size).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from callcenter import yamlsrc  # noqa: E402
from callcenter.dialer import export  # noqa: E402
from callcenter.dialer.campaign import parse_campaign  # noqa: E402
from callcenter.dialer.keys import DialerKeys  # noqa: E402
from callcenter.dialer.upload import UploadLimits, import_list, parse_csv  # noqa: E402
from callcenter.redis_server import EmbeddedRedis  # noqa: E402
from callcenter.redisconn import connect  # noqa: E402

CAMPAIGN = 'id: bench\ntype: telesales\ndial_mode: progressive\nqueue: sales\ncaller_id: "02873001234"\n'


async def run(url: str, n: int, page: int) -> None:
    data, loc = yamlsrc.loads(CAMPAIGN, "bench.yaml")
    campaign, keys = parse_campaign(data, loc), DialerKeys("b:")
    listing = "phone,name,amount,note\n" + "".join(f"09{i:08d},Khách hàng {i},{i * 1000},ghi chú {i}\n"
                                                   for i in range(n))
    limits = UploadLimits(max_rows=max(n, 1), max_bytes=len(listing.encode()) + 1, max_cells=4 * n + 10)
    r = connect(url)
    try:
        t0 = time.perf_counter()
        await import_list(r, keys, campaign, parse_csv(listing.encode(), limits=limits), now=time.time())
        del listing
        print(f"uploaded {n} contacts in {time.perf_counter() - t0:.1f} s")
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        size = largest = rows = 0
        t0 = time.perf_counter()
        async for chunk in export.results_csv(r, keys, "bench", page=page):
            size, largest, rows = size + len(chunk), max(largest, len(chunk)), rows + chunk.count(b"\n")
        took = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    finally:
        await r.aclose()
    print(f"contacts {n}  csv {size / 1e6:.1f} MB ({rows - 1} rows)  export peak {peak / 1e6:.2f} MB  "
          f"largest chunk {largest / 1e3:.0f} kB  {(rows - 1) / took:,.0f} rows/s (under tracemalloc)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--page", type=int, default=export.BATCH)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        server = EmbeddedRedis(tmp).start()
        try:
            asyncio.run(run(server.url, a.contacts, a.page))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
