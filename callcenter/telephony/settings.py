"""SIP settings of a worker (no pjsua2 import: config validation must work without it)."""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.telephony.trust import DEFAULT_TRUSTED, TrustedSource


@dataclass(frozen=True)
class CapacitySettings:
    """When a worker stops taking new calls (503 + Retry-After; see telephony/admission.py and the
    `capacity:` section of callcenter.yaml)."""

    loop_lag_seconds: float = 0.25   # smoothed lateness of the event loop; admit again below half of it
    loop_cpu: float = 0.95           # share of one core the loop thread used over the last second (0: off)
    process_cpu: float = 0.0         # cores the whole process used over the last second (0: off)
    reserve_calls: int = 24          # call slots of sip.max_calls kept for agent and outbound legs
    max_new_calls_per_second: float = 0.0   # incoming calls admitted per second (0: no cap)
    retry_after: int = 5             # seconds, in the 503's Retry-After
    hold_seconds: float = 2.0        # an overload lasts at least this long (no flapping)


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
    # Security (see callcenter.yaml): who may send INVITEs, how much of the worker one source may
    # take, and how long a call may live without media or at all.
    trusted: tuple[TrustedSource, ...] = DEFAULT_TRUSTED
    max_calls_per_source: int = 200
    rtp_timeout: float = 60.0        # no RTP received for this long: hang up (0: never)
    max_call_seconds: float = 14400.0  # any call longer than this is hung up (0: no limit)
    max_tcp_connections: int = 1000  # SIP TCP connections held open at once (0: no limit)
    capacity: CapacitySettings = CapacitySettings()
