"""The SIP pump is event-driven (issue 11, bench/RESULTS.md "Session 5, second cut"): the loop's selector
watches pjsip's SIP ioqueue (its epoll fd, found in /proc), so a SIP message is handled when it arrives, not
by a 1 ms poll. Real pjsua2, a real UDP datagram; no SIP peer needed beyond a socket."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import textwrap

import ports

CHILD = textwrap.dedent("""
    import asyncio, socket, sys
    from callcenter.telephony.settings import SipSettings
    from callcenter.telephony.softswitch import PjSoftswitch

    port, rtp = int(sys.argv[1]), int(sys.argv[2])

    async def incoming(leg):
        pass

    async def main():
        sw = PjSoftswitch(SipSettings(bind="127.0.0.1", port=port, transports=("udp",), rtp_port=rtp,
                                      rtp_port_range=200, max_calls=64), asyncio.get_running_loop(), incoming)
        sw.start()
        print("fd", sw._sip_fd is not None, flush=True)
        sw._pump_handle.cancel()   # no tick any more: only the watched ioqueue can get the request handled
        sw._pump_handle = None
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        me = s.getsockname()[1]
        s.sendto((f"OPTIONS sip:callcenter@127.0.0.1:{port} SIP/2.0\\r\\n"
                  f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-pump1\\r\\n"
                  "Max-Forwards: 70\\r\\nFrom: <sip:t@127.0.0.1>;tag=1\\r\\nTo: <sip:callcenter@127.0.0.1>\\r\\n"
                  "Call-ID: pump-test-1\\r\\nCSeq: 1 OPTIONS\\r\\nContent-Length: 0\\r\\n\\r\\n").encode(),
                 ("127.0.0.1", port))
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(s, 4096), 20)
        print("reply", data.split(b"\\r\\n", 1)[0].decode(), flush=True)

    asyncio.run(main())
""")


def test_sip_ioqueue_fd_is_the_epoll_that_watches_the_sip_socket() -> None:
    from callcenter.telephony.softswitch import sip_ioqueue_fd

    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(("127.0.0.1", 0))
    other.bind(("127.0.0.1", 0))
    decoy, ioqueue = select.epoll(), select.epoll()
    try:
        decoy.register(other.fileno(), select.EPOLLIN)
        assert sip_ioqueue_fd(sip.getsockname()[1]) is None
        ioqueue.register(sip.fileno(), select.EPOLLIN)
        assert sip_ioqueue_fd(sip.getsockname()[1]) == ioqueue.fileno()
    finally:
        for x in (decoy, ioqueue, sip, other):
            x.close()


def test_a_sip_request_is_answered_without_the_poll() -> None:
    port, rtp = ports.block(1), ports.block(200, media=True)
    out = subprocess.run([sys.executable, "-c", CHILD, str(port), str(rtp)], capture_output=True, text=True,
                         timeout=60)
    lines = [line for line in out.stdout.splitlines() if line.startswith(("fd", "reply"))]
    assert lines == ["fd True", "reply SIP/2.0 200 OK"], (out.stdout[-2000:], out.stderr[-2000:])
