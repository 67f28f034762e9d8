"""The pjsua2 endpoint of one worker process, pumped from the asyncio/Twisted loop.

pjsua2 runs with no worker threads of its own for SIP (`threadCnt=0`) and with
`mainThreadOnly`, so every callback is delivered from `libHandleEvents` on the loop
thread; the loop's selector watches the SIP ioqueue and a tick runs timers and DTMF (TICK_BUSY).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pjsua2 as pj

from callcenter import logs, metrics
from callcenter.exceptions import TelephonyError
from callcenter.logs import mask_number
from callcenter.tasks import TaskSet
from callcenter.telephony.admission import Admission
from callcenter.telephony.api import EDGE_UNREGISTERED, HangupInfo, OriginateResult
from callcenter.telephony.leg import PjLeg
from callcenter.telephony.media import CLOCK_RATE
from callcenter.telephony.settings import SipSettings
from callcenter.telephony.trust import SourcePolicy, asserted_user, safe_header_value, safe_uri, source_ip

log = logs.get("softswitch")

IncomingHandler = Callable[[PjLeg], Awaitable[None]]

# How often the RTP-timeout / maximum-duration watchdog looks at every call (seconds).
WATCH_EVERY = 2.0

# The SIP pump (issue 11). The loop's selector watches pjsip's SIP ioqueue (its epoll fd, see
# sip_ioqueue_fd), so a SIP message is handled when it arrives, without a poll. A tick still runs
# pjsip's timers and the callbacks pjsua2 queues from the media thread for the loop thread (DTMF
# digits; those have no fd): every TICK_BUSY while calls are up, TICK_IDLE otherwise. Each tick costs
# a loop wake-up (~40 us of loop CPU measured: the 1 ms poll cost ~40 ms of CPU a second).
TICK_BUSY = 0.005
TICK_IDLE = 0.02

# Call slots an outbound leg may not take: incoming INVITEs need a free slot to be refused with 503.
SLOTS_FOR_REFUSALS = 8

# Distinct From users (outbound caller ids) with their own pjsua account; PJSUA_MAX_ACC is 64.
MAX_CALLER_IDS = 32


def create_library(ep: pj.Endpoint) -> None:
    """ep.libCreate() without its banner: before libInit() pjlib logs at level 5 straight to stdout,
    which would break the one-JSON-object-per-line log stream."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        ep.libCreate()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def media_only_endpoint() -> pj.Endpoint:
    """A started endpoint for pjmedia alone (the doctor's probe, the player tests): no SIP thread, events
    pumped by the caller, no log, the null sound device, 8 kHz mono. The caller ends it with libDestroy()."""
    ep = pj.Endpoint()
    create_library(ep)
    try:
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.logConfig.level = 0
        cfg.logConfig.consoleLevel = 0
        cfg.medConfig.clockRate = CLOCK_RATE
        cfg.medConfig.sndClockRate = CLOCK_RATE
        cfg.medConfig.channelCount = 1
        ep.libInit(cfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
    except pj.Error:
        ep.libDestroy()
        raise
    return ep


@functools.cache
def _pjsip() -> ctypes.CDLL:
    import _pjsua2  # the SWIG extension: pjproject's C libraries are linked into it

    lib = ctypes.CDLL(_pjsua2.__file__)
    lib.pjsip_transport_shutdown2.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pjsip_transport_shutdown2.restype = ctypes.c_int
    lib.pjsua_call_get_count.argtypes = []
    lib.pjsua_call_get_count.restype = ctypes.c_uint
    return lib


def _shutdown_transport(handle: int) -> None:
    """Close one SIP connection now. pjsua2's Python binding hands transport handles to callbacks as
    plain integers but Endpoint.transportShutdown() only takes its own pointer type, so this calls
    pjsip_transport_shutdown2(tp, force) from the same library directly (on the loop thread, like
    every pjsip call here)."""
    status = _pjsip().pjsip_transport_shutdown2(handle, 1)
    if status != 0:
        log.warning("tcp shutdown failed", status=status)


def sip_ioqueue_fd(port: int) -> int | None:
    """The epoll fd of pjsip's SIP ioqueue: the one of this process's epoll fds that watches the socket
    bound to the SIP `port` (the media ioqueue and the loop's own selector have their own). pjlib does
    not export it; Linux shows it in /proc (fdinfo's `tfd:` lines). None where it cannot be found."""
    inodes: set[str] = set()
    for table in ("udp", "udp6", "tcp", "tcp6"):
        try:
            with open(f"/proc/self/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{cols[9]}]")
    sockets: set[int] = set()
    epolls: list[int] = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target in inodes:
            sockets.add(int(name))
        elif target == "anon_inode:[eventpoll]":
            epolls.append(int(name))
    for fd in epolls:
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                watched = {int(line.split()[1]) for line in f if line.startswith("tfd:")}
        except OSError:
            continue
        if watched & sockets:
            return fd
    return None


def result_for_code(code: int, cancelled_by_timeout: bool = False, reason: str = "") -> OriginateResult:
    """Map a final SIP status (and its reason phrase) of an outbound INVITE to a dial result."""
    if code == 480 and EDGE_UNREGISTERED in reason:
        return OriginateResult.UNREGISTERED
    if cancelled_by_timeout or code in (408, 480, 487):
        return OriginateResult.NO_ANSWER
    if code in (486, 600):
        return OriginateResult.BUSY
    if code in (404, 410, 484, 604):
        return OriginateResult.INVALID
    if 400 <= code < 500 or code in (603, 606):
        return OriginateResult.REJECTED
    return OriginateResult.FAILED


def _into_cpp(what: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A pjsua2 callback that never raises into C++: a failure is logged as "<what> failed"."""
    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def shielded(*args: Any) -> None:
            try:
                fn(*args)
            except Exception:
                log.exception(f"{what} failed")
        return shielded
    return wrap


class _LogWriter(pj.LogWriter):
    def write(self, entry: Any) -> None:
        try:
            # SIP traces carry numbers in URIs and headers: mask them like every other log line.
            msg = mask_number(entry.msg.strip())
            if entry.level <= 1:
                log.error("pjsip", msg=msg)
            elif entry.level == 2:
                log.warning("pjsip", msg=msg)
            else:
                log.debug("pjsip", msg=msg)
        except Exception:  # noqa: BLE001, S110 - never raise into C++
            pass


class _Bound:
    """A pjsua2 object whose callbacks report to the softswitch (first in the bases, before the pj class)."""

    def __init__(self, switch: PjSoftswitch, *pj_args: Any) -> None:
        super().__init__(*pj_args)
        self.switch = switch


class _Account(_Bound, pj.Account):
    """The account every call arrives on and is made from."""

    @_into_cpp("incoming call handler")
    def onIncomingCall(self, prm: Any) -> None:  # noqa: N802 - pjsua2 name
        self.switch._incoming(self, prm.callId, prm.rdata.srcAddress, prm.rdata.wholeMsg)


class _Refusal(_Bound, pj.Call):
    """An incoming call turned away with 503 + Retry-After (draining, overload): no PjLeg, no media
    stream. Dropped *inside* the DISCONNECTED callback, as pjsua2's docs do (`delete this`): the C++
    destructor clears the user data of its call slot and hangs up whatever call is active there, and
    near the call limit pjsua hands that slot to the next INVITE within the same pump."""

    @_into_cpp("refusal state handler")
    def onCallState(self, prm: Any) -> None:  # noqa: N802 - pjsua2 name
        if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.switch._refusals.pop(id(self), None)


class _Endpoint(_Bound, pj.Endpoint):
    """The endpoint, for its transport events (the TCP connection cap)."""

    @_into_cpp("transport state handler")
    def onTransportState(self, prm: Any) -> None:  # noqa: N802 - pjsua2 name
        self.switch._transport_state(prm.hnd, str(prm.type), int(prm.state))


class PjSoftswitch:
    """Owns the pjsua2 Endpoint: transports, the local account, live legs and originate()."""

    def __init__(self, settings: SipSettings, loop: asyncio.AbstractEventLoop,
                 on_incoming: IncomingHandler) -> None:
        self.settings = settings
        self.loop = loop
        self.on_incoming = on_incoming
        self.ep = _Endpoint(self)
        self.policy = SourcePolicy(settings.trusted, settings.max_calls_per_source)
        self._tcp: dict[int, Any] = {}   # live SIP TCP connections: pointer -> pjsua2 handle
        self._watch_handle: asyncio.TimerHandle | None = None
        self.accepting = False
        self.legs: dict[str, PjLeg] = {}
        self._accounts: dict[str, _Account] = {}
        self._music: dict[str, pj.AudioMediaPlayer] = {}
        self._pump_handle: asyncio.TimerHandle | None = None
        self._sip_fd: int | None = None   # the SIP ioqueue's epoll fd, watched by the loop's selector
        self._transports: list[int] = []  # pjsua transport ids, in sip.transports order
        self._gc_handle: asyncio.TimerHandle | None = None
        self._writer = _LogWriter()
        self.tasks = TaskSet()
        self.digit_listeners: list[Callable[[PjLeg, str], None]] = []
        self._refusals: dict[int, _Refusal] = {}
        # Overload: 503 + Retry-After past what this worker can carry (see telephony/admission.py).
        self.admission = Admission(settings.capacity, settings.max_calls, self._calls_in_use, self._media_free)
        self._rtp_pairs = (max(4, settings.rtp_port_range // 2) & ~1) // 2   # the inbound account's slice

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        create_library(self.ep)
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = s.max_calls
        cfg.uaConfig.userAgent = "callcenter"
        cfg.medConfig.clockRate = CLOCK_RATE
        cfg.medConfig.sndClockRate = CLOCK_RATE
        cfg.medConfig.channelCount = 1
        # One thread polls the media ioqueue: the build's bare epoll (config_site.h) relies on it.
        cfg.medConfig.threadCnt = 1
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        cfg.logConfig.level = s.log_level
        cfg.logConfig.consoleLevel = s.log_level  # the writer only sees messages up to this level
        cfg.logConfig.writer = self._writer
        cfg.logConfig.decor = 0
        self.ep.libInit(cfg)
        compiled = pj.UaConfig().maxCalls
        if compiled < s.max_calls:
            raise TelephonyError(f"pjsua2 was built with PJSUA_MAX_CALLS={compiled} < sip.max_calls="
                                 f"{s.max_calls}; run scripts/build_pjsua2.sh")
        for kind in s.transports:
            tcfg = pj.TransportConfig()
            tcfg.port = s.port
            if s.bind and s.bind != "0.0.0.0":
                tcfg.boundAddress = s.bind
            if s.public_address:
                tcfg.publicAddress = s.public_address
            ttype = pj.PJSIP_TRANSPORT_UDP if kind == "udp" else pj.PJSIP_TRANSPORT_TCP
            try:
                self._transports.append(self.ep.transportCreate(ttype, tcfg))
            except pj.Error as exc:
                raise TelephonyError(f"cannot listen on {kind} {s.bind}:{s.port}: {exc.reason}") from None
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        for codec in self.ep.codecEnum2():
            prio = {"PCMU/8000/1": 255, "PCMA/8000/1": 254}.get(codec.codecId, 0)
            self.ep.codecSetPriority(codec.codecId, prio)
        self.account(s.user)
        # Cyclic garbage collection only on this thread: a pjsua2 object freed by a collection that
        # happens to run on a foreign thread (the /metrics scrape, asyncio.to_thread) aborts pjlib
        # ("Calling pjlib from unknown/external thread").
        gc.disable()
        self._gc_handle = self.loop.call_later(0.5, self._collect, 0)
        if s.rtp_timeout or s.max_call_seconds:
            self._watch_handle = self.loop.call_later(WATCH_EVERY, self._watch)
        self.accepting = True
        self.admission.start(self.loop)
        self._watch_sip_fd()
        self._pump()
        log.info("softswitch started", port=s.port, transports=list(s.transports), max_calls=s.max_calls)

    def stop_accepting(self) -> None:
        """New INVITEs get 503 from now on (graceful shutdown)."""
        self.accepting = False

    async def shutdown(self, deadline: float) -> None:
        """Let live calls end by themselves until `deadline` seconds pass, then hang them up."""
        self.stop_accepting()
        end = time.monotonic() + deadline
        while self.legs and time.monotonic() < end:
            await asyncio.sleep(0.2)
        for leg in list(self.legs.values()):
            await leg.hangup(503)
        if self._pump_handle:
            self._pump_handle.cancel()
        if self._sip_fd is not None:
            self.loop.remove_reader(self._sip_fd)
            self._sip_fd = None
        if self._gc_handle:
            self._gc_handle.cancel()
        if self._watch_handle:
            self._watch_handle.cancel()
        self.admission.stop()
        self._music.clear()
        await asyncio.sleep(0.05)  # let released pj.Call objects go before the library does
        gc.collect()
        for acc in self._accounts.values():
            acc.shutdown()
        self._accounts.clear()
        self.ep.libDestroy()

    # -- accounts and incoming -------------------------------------------------------------

    def account(self, user: str) -> _Account:
        """A local (non-registering) account for the From user of outbound legs. Accounts are few
        (PJSUA_MAX_ACC): the default one (incoming calls, agent offers) and one per outbound caller
        id a campaign uses; more than MAX_CALLER_IDS distinct caller ids fall back to the default
        account with the caller id in P-Asserted-Identity (see originate)."""
        acc = self._accounts.get(user)
        if acc is None:
            if self._accounts and len(self._accounts) >= MAX_CALLER_IDS:
                return self._accounts[self.settings.user]
            s = self.settings
            cfg = pj.AccountConfig()
            cfg.idUri = f"sip:{user}@{self.host}:{s.port}"
            # pjsua hands out RTP ports per account from the account's own base: the default account
            # (nearly every call) gets half the range, caller-id accounts share the other half.
            half = max(4, s.rtp_port_range // 2) & ~1
            if not self._accounts:
                base, span = s.rtp_port, half
            else:
                span = max(2, half // 8) & ~1
                base = s.rtp_port + half + span * ((len(self._accounts) - 1) % 8)
            cfg.mediaConfig.transportConfig.port = base
            cfg.mediaConfig.transportConfig.portRange = span
            # An answer listing several codecs would otherwise trigger a re-INVITE to lock one.
            cfg.mediaConfig.lockCodecEnabled = False
            if len(self._transports) == 1:
                # The one transport every call uses: its address goes in Contact and Via as it is, where an
                # account free to pick opens, connects and closes a socket per call to ask the kernel which
                # interface leads to the peer (pjsip get_net_interface: ~2% of the loop thread at 200 calls/s).
                cfg.sipConfig.transportId = self._transports[0]
            if s.public_address:
                cfg.mediaConfig.transportConfig.publicAddress = s.public_address
            acc = _Account(self)
            acc.create(cfg, not self._accounts)
            self._accounts[user] = acc
        return acc

    @property
    def host(self) -> str:
        s = self.settings
        return s.public_address or (s.bind if s.bind not in ("", "0.0.0.0") else "127.0.0.1")

    def _incoming(self, acc: _Account, call_id: int, src: str, message: str) -> None:
        ip = source_ip(src)
        entry = self.policy.match(ip)
        if entry is not None:
            # Draining or overloaded: 503 before a leg, a stream or a player exists (the edge retries
            # the next worker). Strangers still get their 403 below, whatever our load.
            busy = "draining" if not self.accepting else self.admission.refusal()
            if busy is not None:
                self._unavailable(acc, call_id, busy if busy == "draining" else f"overload_{busy}")
                return
        leg = PjLeg(self, acc, call_id)
        self.legs[leg.id] = leg
        if entry is None:
            # Not the edge, not a trunk: someone bypassing the edge's auth and flood control.
            self._refuse(leg, 403, "untrusted_source", ip)
            return
        assert ip is not None
        if not self.policy.admit(ip, entry):
            # One source (a trunk, a compromised peer) must not take every line of the worker.
            self._refuse(leg, 486, "source_cap", ip)
            return
        leg.source = str(ip)
        pai = asserted_user(message) if entry.pai else ""
        if pai:
            leg.caller, leg.caller_verified = pai, True
        self.tasks.spawn(self.on_incoming(leg), "incoming", call_id=leg.id)

    def _unavailable(self, acc: _Account, call_id: int, reason: str) -> None:
        """503 Service Unavailable with Retry-After, counted by reason; logged per state change only
        (admission, draining), never per call: at overload that would be thousands of lines."""
        metrics.SIP_REFUSED_TOTAL.labels(reason=reason).inc()
        call = _Refusal(self, acc, call_id)
        self._refusals[id(call)] = call
        prm = pj.CallOpParam(True)
        prm.statusCode = 503
        hdr = pj.SipHeader()
        hdr.hName, hdr.hValue = "Retry-After", str(self.settings.capacity.retry_after)
        prm.txOption.headers.append(hdr)
        try:
            # answer(), not hangup(): from inside onIncomingCall pjsua defers a hangup until its media
            # transport is done and then sends it without our headers; a final answer goes out now.
            call.answer(prm)
        except pj.Error as exc:
            log.warning("503 failed", error=exc.reason)
            self._refusals.pop(id(call), None)

    def _refuse(self, leg: PjLeg, code: int, reason: str, ip: Any) -> None:
        self.refused(reason, leg, str(ip or ""))
        self.tasks.spawn(leg.hangup(code, reason), "refuse", call_id=leg.id)

    def refused(self, reason: str, leg: PjLeg, target: str) -> None:
        """Count and log a refused request (untrusted source, per-source cap, REFER, Replaces)."""
        metrics.SIP_REFUSED_TOTAL.labels(reason=reason).inc()
        log.warning("sip request refused", reason=reason, call_id=leg.id, caller=leg.caller,
                    target=mask_number(target))

    def forget(self, leg: PjLeg) -> None:
        self.legs.pop(leg.id, None)
        if leg.source:
            self.policy.release(leg.source)
            leg.source = ""
        # Drop the pj.Call now, still inside the DISCONNECTED callback (pjsua2's own samples `delete
        # this` there). Its C++ destructor clears the user data of its call *slot* and hangs up
        # whatever call is active in it; near sip.max_calls pjsua gives the freed slot to the next
        # INVITE within the same pump, so a release on a later loop turn answered that new caller
        # 603 and cut its leg off from every callback (the 603s and piled-up legs at 150 calls/s).
        leg.release()

    def on_digit(self, leg: PjLeg, digit: str) -> None:
        for listener in self.digit_listeners:
            listener(leg, digit)

    # -- media ------------------------------------------------------------------------------

    def _calls_in_use(self) -> int:
        """pjsua call slots taken by others than the INVITE being decided (pjsua counts it already):
        our legs, or pjsua's own count when higher (a leg given up after a hangup timeout keeps
        its slot until pjsua lets go, and pjsua itself answers 486 once every slot is taken)."""
        return max(len(self.legs), int(_pjsip().pjsua_call_get_count()) - 1)

    def _media_free(self) -> int:
        """Calls' worth of media left: conference-bridge slots, or RTP port pairs of the inbound
        account's slice (every live leg counted there, the worst case)."""
        conf = int(self.ep.mediaMaxPorts()) - int(self.ep.mediaActivePorts())
        return min(conf, self._rtp_pairs - len(self.legs))

    def music_source(self, path: str) -> pj.AudioMediaPlayer:
        """One looping player per music file, shared by every caller on hold (one conference port)."""
        player = self._music.get(path)
        if player is None:
            player = pj.AudioMediaPlayer()
            try:
                player.createPlayer(path, 0)
            except pj.Error as exc:
                raise TelephonyError(f"cannot open music {path}: {exc.info()}") from None
            self._music[path] = player
        return player

    # -- outbound ---------------------------------------------------------------------------

    async def originate(self, uri: str, caller_id: str, ring_timeout: float,
                        headers: dict[str, str] | None = None) -> tuple[OriginateResult, PjLeg | None]:
        headers = dict(headers or {})
        bad = [v for v in headers.values() if not safe_header_value(v)]
        if not safe_uri(uri) or bad or not re.fullmatch(r"[\w.+*#-]*", caller_id or ""):
            # A number or URI built from caller input must not smuggle headers or a second target.
            log.warning("originate refused: unsafe uri, caller id or header", uri=mask_number(uri))
            return OriginateResult.INVALID, None
        if self._calls_in_use() + 1 >= self.settings.max_calls - SLOTS_FOR_REFUSALS:
            # pjsua answers INVITEs 486 itself once every call slot is taken, before we can say 503,
            # and the edge does not try another worker on 486: the last slots stay for our refusals.
            log.warning("originate refused: call slots full", calls=len(self.legs))
            return OriginateResult.FAILED, None
        acc = self.account(caller_id or self.settings.user)
        leg = PjLeg(self, acc, outgoing=True)
        if caller_id:
            # Trunks and phones that honour it show this; it also carries a caller id that did not get
            # an account of its own.
            headers.setdefault("P-Asserted-Identity", f"<sip:{caller_id}@{self.host}>")
        prm = pj.CallOpParam(True)
        prm.opt.audioCount = 1
        prm.opt.videoCount = 0
        for name, value in (headers or {}).items():
            hdr = pj.SipHeader()
            hdr.hName, hdr.hValue = name, value
            prm.txOption.headers.append(hdr)
        try:
            leg._pj().makeCall(uri, prm)
        except pj.Error as exc:
            log.warning("originate failed", uri=uri, error=exc.reason)
            return (OriginateResult.INVALID if "URI" in exc.reason.upper() else OriginateResult.FAILED), None
        self.legs[leg.id] = leg
        leg._read_info()
        timed_out = False
        try:
            either: list[asyncio.Future[None] | asyncio.Future[HangupInfo]] = [leg._confirmed, leg._ended]
            done, _ = await asyncio.wait(either, timeout=ring_timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                timed_out = True
                await leg.hangup()
        except asyncio.CancelledError:
            await leg.hangup()
            raise
        if leg._confirmed.done() and not leg._confirmed.exception():
            try:
                await leg._wait_media()
            except Exception:  # noqa: BLE001
                await leg.hangup()
                return OriginateResult.FAILED, None
            return OriginateResult.ANSWERED, leg
        info = await leg.wait_ended()
        return result_for_code(info.sip_code, timed_out, info.reason), None

    def _watch(self) -> None:
        """Hang up calls that receive no RTP for sip.rtp_timeout or outlive sip.max_call_seconds: a
        dead peer or a call left open must not hold a line (and a trunk channel) forever."""
        s = self.settings
        now = time.time()
        for leg in list(self.legs.values()):
            if leg.ended:
                continue
            cause = ""
            if s.max_call_seconds and now - leg.created > s.max_call_seconds:
                cause = "max_call_seconds"
            elif s.rtp_timeout and leg.rx_silent_for() > s.rtp_timeout:
                cause = "rtp_timeout"
            if cause:
                metrics.SIP_WATCHDOG_HANGUPS_TOTAL.labels(reason=cause).inc()
                log.warning("hanging up call", reason=cause, call_id=leg.id)
                self.tasks.spawn(leg.hangup(200, cause), "watchdog", call_id=leg.id)
        self._watch_handle = self.loop.call_later(WATCH_EVERY, self._watch)

    # -- TCP connection cap -------------------------------------------------------------------

    def _transport_state(self, hnd: Any, kind: str, state: int) -> None:
        if not kind.lower().startswith("tcp"):
            return
        key = int(hnd)
        if state == pj.PJSIP_TP_STATE_CONNECTED:
            self._tcp[key] = hnd
            cap = self.settings.max_tcp_connections
            if cap and len(self._tcp) > cap:
                metrics.SIP_REFUSED_TOTAL.labels(reason="tcp_cap").inc()
                log.warning("sip request refused", reason="tcp_cap", connections=len(self._tcp))
                # Not from inside pjsip's accept callback: close it on the next loop turn.
                self.loop.call_soon(self._close_tcp, key)
        elif state in (pj.PJSIP_TP_STATE_DISCONNECTED, pj.PJSIP_TP_STATE_DESTROY):
            self._tcp.pop(key, None)

    def _close_tcp(self, key: int) -> None:
        # Only while still listed: a transport that reported DISCONNECTED may be freed already.
        if self._tcp.pop(key, None) is not None:
            _shutdown_transport(key)

    def _collect(self, n: int) -> None:
        gc.collect(2 if n % 60 == 59 else 1 if n % 10 == 9 else 0)
        self._gc_handle = self.loop.call_later(0.5, self._collect, n + 1)

    # -- the pump ---------------------------------------------------------------------------

    def _handle_events(self) -> int:
        busy = 0
        try:
            for _ in range(100):
                n = self.ep.libHandleEvents(0)
                if n <= 0:
                    break
                busy += n
        except Exception:
            log.exception("libHandleEvents failed")
        return busy

    def _pump(self) -> None:
        """The tick: pjsip's timers and the callbacks pjsua2 queued from the media thread (DTMF digits).
        With the SIP ioqueue watched (`_sip_ready`) it runs every TICK_BUSY while calls are up, else
        TICK_IDLE; without, it also polls the SIP sockets: every ms while busy, as before."""
        busy = self._handle_events()
        if self._sip_fd is not None:
            delay = TICK_BUSY if (busy or self.legs) else TICK_IDLE
        else:
            delay = 0.001 if (busy or self.legs) else 0.005
        self._pump_handle = self.loop.call_later(delay, self._pump)

    def _sip_ready(self) -> None:
        """A SIP socket has something: handle it now (the loop's selector watches the SIP ioqueue)."""
        self._handle_events()
        due = self._pump_handle
        if self.legs and due is not None and due.when() > self.loop.time() + TICK_BUSY:
            due.cancel()   # the first call after an idle spell: its digits must not wait TICK_IDLE
            self._pump_handle = self.loop.call_later(TICK_BUSY, self._pump)

    def _watch_sip_fd(self) -> None:
        fd = sip_ioqueue_fd(self.settings.port)
        if fd is None:
            log.warning("sip ioqueue not found, polling it every ms", port=self.settings.port)
            return
        self.loop.add_reader(fd, self._sip_ready)
        self._sip_fd = fd
