"""What pumping pjsua2 costs the loop thread a second, with N answered calls sitting idle (issue 11).

The worker's loop thread pumps pjsua2 (`softswitch.PjSoftswitch._pump`): a fixed cost a second, not a cost per
call. This runs one bare `PjSoftswitch` per tree (no IVR, no Redis: each incoming call is answered and left up),
places N calls from sipp's built-in uac (no RTP), waits until all are up, then reads the loop thread's CPU
(`time.thread_time`) over `--seconds`. Trees alternate `--repeat` times:

    git worktree add /tmp/g2-base <commit>
    .venv/bin/python bench/pump_cost.py --tree /tmp/g2-base --tree . --calls 0,100 --repeat 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path


async def measure(n: int, port: int, rtp: int, seconds: float) -> None:
    """In the child: the softswitch of the tree on PYTHONPATH, n calls up, loop CPU ms/s printed."""
    from callcenter.telephony.leg import PjLeg
    from callcenter.telephony.settings import SipSettings
    from callcenter.telephony.softswitch import PjSoftswitch

    async def on_incoming(leg: PjLeg) -> None:
        await leg.answer()
        await leg.wait_ended()

    settings = SipSettings(bind="127.0.0.1", port=port, transports=("udp",), rtp_port=rtp,
                           rtp_port_range=max(200, 8 * n + 200), max_calls=max(64, 2 * n + 64), rtp_timeout=0)
    sw = PjSoftswitch(settings, asyncio.get_running_loop(), on_incoming)
    sw.start()
    uac = None
    if n:
        uac = subprocess.Popen(["sipp", "-sn", "uac", "-i", "127.0.0.1", "-p", str(port + 1), "-m", str(n),
                                "-l", str(n), "-r", "200", "-d", str(int((seconds + 60) * 1000)), "-nostdin",
                                f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 60
        while len(sw.legs) < n and time.monotonic() < end:
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    cpu0, wall0 = time.thread_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.thread_time() - cpu0, time.monotonic() - wall0
    print(f"{len(sw.legs)} {1000 * cpu / wall:.2f}", flush=True)
    if uac is not None:
        uac.kill()
        uac.wait()
    os._exit(0)   # no libDestroy with calls up: the figure is taken


def run(tree: str, n: int, seconds: float) -> tuple[int, float]:
    # tests/ from this checkout, in the parent only: the child imports callcenter from `tree` alone
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests import ports

    port, rtp = ports.block(2), ports.block(max(200, 8 * n + 200), media=True)
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
    out = subprocess.run([sys.executable, __file__, "--child", str(n), str(port), str(rtp), str(seconds)],
                         env=env, capture_output=True, text=True, timeout=seconds + 120)
    last = (out.stdout.strip().splitlines() or ["0 nan"])[-1].split()
    return int(last[0]), float(last[1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        n, port, rtp, seconds = sys.argv[2:6]
        asyncio.run(measure(int(n), int(port), int(rtp), float(seconds)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", required=True, help="a checkout whose callcenter/ is measured")
    ap.add_argument("--calls", default="0,100", help="idle calls up, comma-separated levels")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    for n in (int(x) for x in args.calls.split(",")):
        for _ in range(args.repeat):
            for tree in args.tree:
                up, ms = run(tree, n, args.seconds)
                print(f"{tree}: {n} calls asked, {up} up: loop CPU {ms:.1f} ms/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
