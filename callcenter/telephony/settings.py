"""SIP settings of a worker (no pjsua2 import: config validation must work without it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SipSettings:
    """What the softswitch needs from the worker config (see config.SipConfig)."""

    bind: str = "0.0.0.0"
    port: int = 5060
    public_address: str = ""         # address in Contact/SDP when bound to 0.0.0.0 behind an edge
    transports: tuple[str, ...] = ("udp", "tcp")
    rtp_port: int = 10000
    rtp_port_range: int = 20000
    max_calls: int = 1000
    user: str = "callcenter"         # user part of our own URI
    log_level: int = 2               # pjsip log level to forward (1 errors .. 5 debug)
    no_answer_after: float = 120.0   # a ringing incoming call the app never answered
