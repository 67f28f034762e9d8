"""pjmedia's clock thread never enters Python for a conference operation (issue 11, bench/RESULTS.md
"Session 7: the GIL the clock thread took").

pjsua reports every conference operation (a port added or removed, a connection made or broken) through
``Endpoint::onAudioMediaOpCompleted``, from the clock thread that mixes the audio. Our endpoint is a Python
subclass (for onTransportState), so pjsua2's SWIG director routed each report into Python: the clock thread
took the GIL thousands of times a second at 200 calls/s, and the loop thread, made to hand it over, idled
at half a core with hundreds of callbacks ready. scripts/pjproject-swig-no-op-director.patch builds the
binding without a director for that method. Real pjsua2 (a player, a recorder, the conference bridge); a
child process because pjsua2 allows one endpoint per process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import ports

REPO = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import asyncio, os, sys, threading, time
    import pjsua2 as pj
    from callcenter.telephony.settings import SipSettings
    from callcenter.telephony import softswitch

    port, rtp, wav, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    reports = []

    def on_op(self, prm):       # what a director would call, from the clock thread
        reports.append(threading.get_ident())

    softswitch._Endpoint.onAudioMediaOpCompleted = on_op

    async def incoming(leg):
        pass

    async def main():
        sw = softswitch.PjSoftswitch(SipSettings(bind="127.0.0.1", port=port, transports=("udp",), rtp_port=rtp,
                                                 rtp_port_range=200, max_calls=64), asyncio.get_running_loop(),
                                     incoming)
        sw.start()
        for _ in range(5):      # ports added, connected, disconnected, removed: one report each
            player, recorder = pj.AudioMediaPlayer(), pj.AudioMediaRecorder()
            player.createPlayer(wav, pj.PJMEDIA_FILE_NO_LOOP)
            recorder.createRecorder(out)
            player.startTransmit(recorder)
            await asyncio.sleep(0.2)
            player.stopTransmit(recorder)
            del player, recorder
            await asyncio.sleep(0.1)
        print("recorded", os.path.getsize(out), "reports", len(reports), flush=True)

    asyncio.run(main())
""")


def test_conference_operations_do_not_call_into_python(tmp_path: Path) -> None:
    out = tmp_path / "heard.wav"
    wav = REPO / "sounds" / "vi" / "hotline" / "welcome.wav"
    assert wav.exists(), "sounds are made by scripts/setup.sh (make_prompts)"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(ports.port()), str(ports.block(200, media=True)), str(wav),
                           str(out)], capture_output=True, text=True, timeout=60, cwd=REPO)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("recorded")), None)
    assert line is not None, proc.stdout + proc.stderr
    _, size, _, reports = line.split()
    assert int(size) > 44 + 1600, "the conference bridge carried the player's audio to the recorder (0.1 s at least)"
    assert int(reports) == 0, "the clock thread called into Python for conference operations"
