"""One SIP call leg on pjsua2, behind the async `Leg` protocol.

Every method runs on the loop thread (pjsua2 is configured with mainThreadOnly, so its
callbacks arrive there too through `libHandleEvents`).
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

from callcenter import logs
from callcenter.exceptions import CallGone, TelephonyError
from callcenter.telephony.api import HangupInfo, HangupSide, Leg, ReferOutcome
from callcenter.telephony.media import wav_closed, wav_seconds
from callcenter.telephony.trust import safe_uri

if TYPE_CHECKING:
    from callcenter.telephony.softswitch import PjSoftswitch

_USER = re.compile(r"sip:([^@;>]+)@")
# record()'s silence: a 20 ms frame's mean level at or below this (percent, ~ -50 dBFS mean) is line noise
VOICE_LEVEL = 3


def uri_user(uri: str) -> str:
    """User part of a SIP URI in a From/To value: '"A" <sip:0901@h>;tag=x' -> '0901'."""
    m = _USER.search(uri)
    return m.group(1) if m else ""


async def _until_closed(path: str, log: Any, settle: float = 2.0) -> None:
    """Wait (up to ``settle`` s) for pjmedia to finish a freed recorder's WAV, so what reads it next (the
    flow's next node, a voicemail's inbox) finds a whole file."""
    deadline = time.monotonic() + settle
    while not wav_closed(path):
        if time.monotonic() >= deadline:
            log.warning("recording header not written", seconds=settle)
            return
        await asyncio.sleep(0.02)


class _PjCall(pj.Call):
    """pjsua2 callbacks forwarded to the owning leg. Exceptions must not escape into C++."""

    def __init__(self, acc: pj.Account, call_id: int, leg: PjLeg) -> None:
        super().__init__(acc, call_id)
        self.leg: PjLeg | None = leg       # None once released: a late callback finds nobody to tell

    def onCallState(self, prm: Any) -> None:  # noqa: N802 - pjsua2 name
        if self.leg is not None:
            self.leg._guard(self.leg._on_state)

    def onCallMediaState(self, prm: Any) -> None:  # noqa: N802
        if self.leg is not None:
            self.leg._guard(self.leg._on_media)

    def onDtmfDigit(self, prm: Any) -> None:  # noqa: N802
        if self.leg is not None:
            self.leg._guard(self.leg._on_digit, prm.digit)

    def onCallTransferStatus(self, prm: Any) -> None:  # noqa: N802
        if self.leg is not None:
            self.leg._guard(self.leg._on_xfer_status, prm.statusCode, prm.finalNotify)

    def onCallTransferRequest(self, prm: Any) -> None:  # noqa: N802
        # A REFER pjsua accepts with a plain 2xx makes it dial the Refer-To itself (any host, on our bill)
        # and leave this leg tracking the wrong call. So 603 is set first, before anything can fail and leave
        # pjsua's 202 default; only a leg whose call layer takes transfers (an agent's phone:
        # on_transfer_request) accepts, and then without pjsua dialing (_take_refer).
        prm.statusCode = 603
        if self.leg is not None and self.leg._refer_listener is not None:
            self.leg._guard(self.leg._take_refer, prm)
        elif self.leg is not None:
            self.leg._guard(self.leg.switch.refused, "refer", self.leg, prm.dstUri)

    def onCallReplaceRequest(self, prm: Any) -> None:  # noqa: N802
        # An INVITE with Replaces naming this dialog would take the call over (attended-transfer
        # pickup); nobody may do that to our calls.
        # (No prm.reason: pjsua2 hands pjsip a pointer into this parameter object, gone by the time
        # the response is written; the default "Forbidden" phrase is used.)
        prm.statusCode = 403
        if self.leg is not None:
            self.leg._guard(self.leg.switch.refused, "replaces", self.leg, "")


class PjLeg:
    """A call leg. Created by PjSoftswitch for incoming INVITEs and by originate()."""

    def __init__(self, switch: PjSoftswitch, acc: pj.Account, call_id: int = pj.PJSUA_INVALID_ID,
                 outgoing: bool = False) -> None:
        self.switch = switch
        self.loop = switch.loop
        self.id = uuid.uuid4().hex
        self.outgoing = outgoing
        self.call: _PjCall | None = _PjCall(acc, call_id, self)
        self.sip_call_id = ""
        self.caller = ""
        self.caller_verified = False   # set by the softswitch from a trusted P-Asserted-Identity
        self.called = ""
        self.source = ""               # IP address an incoming INVITE came from
        self.created = time.time()
        self.answered_at: float | None = None
        self.last_code = 0
        self.last_reason = ""
        self.audio: pj.AudioMedia | None = None
        self.peer: PjLeg | None = None
        self._digits: collections.deque[str] = collections.deque()
        self._waiter: tuple[asyncio.Future[str], bool] | None = None
        self._media_ready: asyncio.Future[None] = self.loop.create_future()
        self._confirmed: asyncio.Future[None] = self.loop.create_future()
        self._ended: asyncio.Future[HangupInfo] = self.loop.create_future()
        self._hangup_by_us = False
        self._player: pj.AudioMediaPlayer | None = None
        self._moh: pj.AudioMediaPlayer | None = None
        self._xfer: asyncio.Future[int] | None = None
        self._end_cause = ""           # why we hung up, when it is not the app's normal end (rtp_timeout)
        self._media_idx = -1
        self.remote_hold = False
        self._hold_listener: Callable[[bool], None] | None = None
        self._refer_listener: Callable[[str, ReferOutcome], None] | None = None  # agents' legs (calls/queueing.py)
        self.media_listeners: list[Callable[[], None]] = []   # told when self.audio is (re)set (recording taps)
        # One-way connections made by send_audio (monitor taps), both ends: made again when a re-INVITE
        # gives either leg a new bridge port (pjsua recreates the stream), undone when a leg ends.
        self._taps_to: set[PjLeg] = set()
        self._taps_from: set[PjLeg] = set()
        # Bridge directions muted by send_audio(peer, False) (a conference party): left off when a re-INVITE
        # reconnects the bridge or a hold ends with bridge() again, until send_audio(peer, True).
        self._silenced: set[PjLeg] = set()
        self._rx_packets = 0
        self._rx_moved = time.monotonic()
        self.log = logs.get("leg", call_id=self.id)
        if call_id != pj.PJSUA_INVALID_ID:
            self._read_info()

    # -- protocol ---------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ended.done()

    async def ring(self) -> None:
        self._alive()
        self._answer_code(180)

    async def answer(self) -> None:
        self._alive()
        self._answer_code(200)
        await self._wait_media()

    async def play(self, prompts: Sequence[str], barge_in: bool = True) -> str | None:
        self._alive()
        if barge_in and self._digits:
            return self._digits[0]
        files = [str(p) for p in prompts]
        if not files:
            return None
        seconds = sum(wav_seconds(f) for f in files)  # validates every file before starting
        await self._wait_media()
        self._stop_media_sources()
        player = pj.AudioMediaPlayer()
        try:
            if len(files) == 1:
                player.createPlayer(files[0], pj.PJMEDIA_FILE_NO_LOOP)
            else:
                player.createPlaylist(files, "prompts", pj.PJMEDIA_FILE_NO_LOOP)
            assert self.audio is not None
            player.startTransmit(self.audio)
        except pj.Error as exc:
            raise TelephonyError(f"cannot play {files}: {exc.info()}") from None
        self._player = player
        try:
            # A frame or two of slack so the last syllable is not clipped.
            woke = await self._sleep(seconds + 0.05, on_digit=barge_in)
        finally:
            self._stop_player(player)
        return self._digits[0] if woke == "digit" else None

    async def collect(self, max_digits: int, timeout: float, inter_digit_timeout: float | None = None,
                      terminator: str | None = "#") -> str:
        got = ""
        wait = timeout
        while len(got) < max_digits:
            if not self._digits:
                if await self._sleep(wait, on_digit=True) == "timeout":
                    break
            digit = self._digits.popleft()
            if terminator and digit == terminator:
                break
            got += digit
            wait = inter_digit_timeout if inter_digit_timeout is not None else timeout
        return got

    def flush_digits(self) -> None:
        self._digits.clear()

    async def start_hold(self, music: str) -> None:
        self._alive()
        await self._wait_media()
        self._stop_media_sources()
        self._moh = self.switch.music_source(music)
        assert self.audio is not None
        self._moh.startTransmit(self.audio)

    async def stop_hold(self) -> None:
        self._stop_moh()

    def on_remote_hold(self, listener: Callable[[bool], None] | None) -> None:
        self._hold_listener = listener

    def on_transfer_request(self, listener: Callable[[str, ReferOutcome], None] | None) -> None:
        self._refer_listener = listener

    def _take_refer(self, prm: Any) -> None:
        """Accept a REFER for the call layer: PJSUA_CALL_XFER_NO_DIAL (scripts/pjproject-xfer-no-dial.patch)
        makes pjsua answer 202 and open the implicit subscription (its first NOTIFY "100 Trying") without
        dialing anything; the listener transfers, checked, itself and its outcome becomes the final NOTIFY.
        The flag goes in before the 202: a build without it raises here and the REFER stays declined."""
        assert self._refer_listener is not None
        prm.opt.flag |= pj.PJSUA_CALL_XFER_NO_DIAL
        prm.statusCode = 202
        xfer_id = int(prm.xferId)
        told = False

        def outcome(code: int) -> None:
            # The subscription outlives this leg (the phone may hang up first, RFC 5589 section 6), so this
            # works after the leg ended; pjsua's error: the phone unsubscribed, or sent "Refer-Sub: false".
            nonlocal told
            if told:
                return
            told = True
            try:
                self.switch.ep.xferNotify(xfer_id, code, True)
            except pj.Error as exc:
                self.log.info("transfer outcome not notified", sipfrag=code, error=exc.info())
                return
            self.log.info("transfer outcome notified", sipfrag=code)

        self.log.info("transfer request accepted", xfer_id=xfer_id)
        self._refer_listener(prm.dstUri, outcome)

    async def record(self, path: str, max_seconds: float, silence_seconds: float | None = None) -> float:
        self._alive()
        await self._wait_media()
        self._stop_media_sources()
        recorder = pj.AudioMediaRecorder()
        try:
            recorder.createRecorder(path)
            assert self.audio is not None
            self.audio.startTransmit(recorder)
        except pj.Error as exc:
            raise TelephonyError(f"cannot record to {path}: {exc.info()}") from None
        started = time.monotonic()
        quiet_since = started
        try:
            while time.monotonic() - started < max_seconds:
                woke = await self._sleep(0.2, on_digit=True)
                if woke == "digit" and self._digits.popleft() == "#":
                    break
                if silence_seconds is not None:
                    # What the caller sends: pjsua2 names levels from the media's side, so getTxLevel() is
                    # the bridge's rx_level from the call's port (getRxLevel() is what the bridge sends it,
                    # nothing while it records); in percent of pjmedia's 0..255 u-law level.
                    if self.audio.getTxLevel() > VOICE_LEVEL:
                        quiet_since = time.monotonic()
                    elif time.monotonic() - quiet_since >= silence_seconds:
                        break
        finally:
            if not self.ended and self.audio is not None:
                try:
                    self.audio.stopTransmit(recorder)
                except pj.Error:
                    pass
            del recorder
        took = time.monotonic() - started
        await _until_closed(path, self.log)
        return took

    async def bridge(self, other: Leg) -> None:
        if not isinstance(other, PjLeg):
            raise TelephonyError("a pjsua2 leg bridges only to another pjsua2 leg")
        self._alive()
        other._alive()
        await self._wait_media()
        await other._wait_media()
        for leg in (self, other):
            leg._stop_media_sources()
        self.peer, other.peer = other, self
        assert self.audio is not None and other.audio is not None
        if other not in self._silenced:
            self.audio.startTransmit(other.audio)
        if self not in other._silenced:
            other.audio.startTransmit(self.audio)

    async def send_audio(self, to: Leg, on: bool = True) -> None:
        """One-way audio from this leg to ``to`` in the conference bridge, beside whatever else either
        hears (a supervisor's monitor taps, calls/monitor.py), or (``on=False``) stop it; stopping a leg
        that ended is a no-op. Unlike bridge() it stops nothing: the bridge of caller and agent stays. Toward
        the leg it is bridged to, ``on=False`` mutes that direction of the bridge until ``on=True``."""
        if not isinstance(to, PjLeg):
            raise TelephonyError("a pjsua2 leg sends audio only to another pjsua2 leg")
        if not on:
            if to is self.peer:
                self._silenced.add(to)
            self._taps_to.discard(to)
            to._taps_from.discard(self)
            if self.audio is not None and to.audio is not None and not self.ended and not to.ended:
                try:
                    self.audio.stopTransmit(to.audio)
                except pj.Error:
                    pass
            return
        self._alive()
        to._alive()
        await self._wait_media()
        await to._wait_media()
        assert self.audio is not None and to.audio is not None
        self.audio.startTransmit(to.audio)
        self._silenced.discard(to)
        if to is not self.peer:       # the bridge's own directions are remade by the bridge
            self._taps_to.add(to)
            to._taps_from.add(self)

    async def transfer(self, uri: str) -> None:
        self._alive()
        if not safe_uri(uri):
            raise TelephonyError(f"refusing to transfer to {uri!r}: not a plain sip:/tel: URI")
        self._xfer = self.loop.create_future()
        try:
            self._pj().xfer(uri, pj.CallOpParam(True))
        except pj.Error as exc:
            raise TelephonyError(f"REFER failed: {exc.info()}") from None
        either: list[asyncio.Future[int] | asyncio.Future[HangupInfo]] = [self._xfer, self._ended]
        done, _ = await asyncio.wait(either, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        code = self._xfer.result() if self._xfer in done else 0
        if code and code >= 300:
            raise TelephonyError(f"transfer to {uri} failed with {code}")
        await self.hangup()

    async def hangup(self, sip_code: int = 200, reason: str = "") -> None:
        """`reason` (e.g. 'rtp_timeout') becomes the HangupInfo reason and the response's phrase."""
        if self.ended:
            return
        self._hangup_by_us = True
        if reason:
            self._end_cause = reason
        self._stop_media_sources()
        prm = pj.CallOpParam(True)
        info_state = self._state()
        if not self.outgoing and info_state is not None and info_state < pj.PJSIP_INV_STATE_CONNECTING:
            # Unanswered incoming: a final response; 200 makes no sense here.
            prm.statusCode = sip_code if sip_code >= 300 else 480
            if reason:
                prm.reason = reason
        try:
            self._pj().hangup(prm)
        except pj.Error as exc:
            self.log.warning("hangup failed", error=exc.info())
            self._finish(0, "hangup failed")
        try:
            await asyncio.wait_for(asyncio.shield(self._ended), 5)
        except TimeoutError:
            self._finish(0, "hangup timeout")

    async def wait_ended(self) -> HangupInfo:
        return await asyncio.shield(self._ended)

    # -- pjsua2 events ----------------------------------------------------------------------

    def _guard(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:  # an exception must never unwind into pjsua2's C++
            self.log.exception("callback failed", callback=getattr(fn, "__name__", "?"))

    def _read_info(self) -> None:
        ci = self._pj().getInfo()
        self.sip_call_id = ci.callIdString
        if self.outgoing:
            self.caller, self.called = uri_user(ci.localUri), uri_user(ci.remoteUri)
        else:
            self.caller, self.called = uri_user(ci.remoteUri), uri_user(ci.localUri)

    def _state(self) -> int | None:
        if self.call is None:
            return None
        try:
            return int(self.call.getInfo().state)
        except pj.Error:
            return None

    def _on_state(self) -> None:
        ci = self._pj().getInfo()
        if not self.sip_call_id:
            self._read_info()
        self.last_code = int(ci.lastStatusCode)
        self.last_reason = ci.lastReason
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            if self.answered_at is None:
                self.answered_at = time.time()
            if not self._confirmed.done():
                self._confirmed.set_result(None)
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._finish(self.last_code, self.last_reason)

    def _on_media(self) -> None:
        call = self._pj()
        ci = call.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status in (pj.PJSUA_CALL_MEDIA_ACTIVE,
                                                                    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                self.audio = call.getAudioMedia(i)
                self._media_idx = i
                # A caller holding with a=inactive legitimately sends no RTP (see rx_silent_for).
                held = mi.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD
                changed = held != self.remote_hold
                self.remote_hold = held
                self._rx_moved = time.monotonic()
                if not self._media_ready.done():
                    self._media_ready.set_result(None)
                if self.peer is not None and self.peer.audio is not None:
                    # Re-INVITE replaced the media port: reconnect the bridge (but a muted direction).
                    if self.peer not in self._silenced:
                        self.audio.startTransmit(self.peer.audio)
                    if self not in self.peer._silenced:
                        self.peer.audio.startTransmit(self.audio)
                for other in self._taps_to:
                    if other.audio is not None:
                        self.audio.startTransmit(other.audio)
                for other in self._taps_from:
                    if other.audio is not None:
                        other.audio.startTransmit(self.audio)
                for listener in list(self.media_listeners):
                    listener()
                if changed:
                    self.log.info("remote hold" if held else "remote resume")
                    if self._hold_listener is not None:
                        self._hold_listener(held)
                return

    def _on_digit(self, digit: str) -> None:
        self._digits.append(digit)
        self.switch.on_digit(self, digit)
        if self._waiter and self._waiter[1] and not self._waiter[0].done():
            self._waiter[0].set_result("digit")

    def _on_xfer_status(self, code: int, final: bool) -> None:
        if self._xfer is not None and not self._xfer.done() and (final or code >= 200):
            self._xfer.set_result(int(code))

    def rx_silent_for(self) -> float:
        """Seconds since the last RTP packet arrived (0 while media is not up or the caller holds).
        Reads pjmedia's RTCP receive counter: packets from a source other than the peer are dropped
        before it (config_site.h), so a stranger's spray does not keep a dead call alive."""
        if self._media_idx < 0 or self.remote_hold or self.call is None or self.ended:
            return 0.0
        try:
            pkts = int(self.call.getStreamStat(self._media_idx).rtcp.rxStat.pkt)
        except pj.Error:
            return 0.0
        now = time.monotonic()
        if pkts != self._rx_packets:
            self._rx_packets, self._rx_moved = pkts, now
        return now - self._rx_moved

    def _finish(self, code: int, reason: str) -> None:
        if self._ended.done():
            return
        reason = self._end_cause or reason
        side = HangupSide.SYSTEM if self._hangup_by_us else HangupSide.CALLER
        self.audio = None
        self._player = None
        self._moh = None
        self._hold_listener = None
        self._refer_listener = None
        for other in self._taps_to:
            other._taps_from.discard(self)
        for other in self._taps_from:
            other._taps_to.discard(self)
        self._taps_to.clear()
        self._taps_from.clear()
        self._silenced.clear()
        if self.peer is not None:
            self.peer.peer = None
            self.peer = None
        self._ended.set_result(HangupInfo(side, code, reason))
        for fut in (self._media_ready, self._confirmed):
            if not fut.done():
                fut.set_exception(CallGone(self.id))
                fut.exception()  # mark retrieved
        if self._waiter and not self._waiter[0].done():
            self._waiter[0].set_exception(CallGone(self.id))
        self.switch.forget(self)

    def release(self) -> None:
        """Drop the pj.Call (called by the softswitch right after the DISCONNECTED callback)."""
        call, self.call = self.call, None
        if call is not None:
            call.leg = None

    # -- helpers ----------------------------------------------------------------------------

    def _alive(self) -> None:
        if self.ended:
            raise CallGone(self.id)

    def _pj(self) -> _PjCall:
        """The pjsua2 call, until the softswitch releases it after the leg ended (then CallGone)."""
        if self.call is None:
            raise CallGone(self.id)
        return self.call

    def _answer_code(self, code: int) -> None:
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        try:
            self._pj().answer(prm)
        except pj.Error as exc:
            raise TelephonyError(f"answer {code} failed: {exc.info()}") from None

    async def _wait_media(self, timeout: float = 5.0) -> None:
        if self._media_ready.done():
            self._media_ready.result()
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._media_ready), timeout)
        except TimeoutError:
            raise TelephonyError("media did not become active") from None

    async def _sleep(self, timeout: float, on_digit: bool) -> str:
        """Wait until timeout ('timeout') or, if on_digit, a DTMF digit ('digit'). CallGone if the leg ends."""
        self._alive()
        if on_digit and self._digits:
            return "digit"
        fut: asyncio.Future[str] = self.loop.create_future()
        self._waiter = (fut, on_digit)
        handle = self.loop.call_later(max(0.0, timeout), _resolve, fut, "timeout")
        try:
            return await fut
        finally:
            handle.cancel()
            self._waiter = None

    def _stop_player(self, player: pj.AudioMediaPlayer) -> None:
        if self.audio is not None and not self.ended:
            try:
                player.stopTransmit(self.audio)
            except pj.Error:
                pass
        if self._player is player:
            self._player = None

    def _stop_moh(self) -> None:
        moh, self._moh = self._moh, None
        if moh is not None and self.audio is not None and not self.ended:
            try:
                moh.stopTransmit(self.audio)
            except pj.Error:
                pass

    def _stop_media_sources(self) -> None:
        if self._player is not None:
            self._stop_player(self._player)
        self._stop_moh()
        if self.peer is not None and self.audio is not None and self.peer.audio is not None:
            try:
                self.audio.stopTransmit(self.peer.audio)
                self.peer.audio.stopTransmit(self.audio)
            except pj.Error:
                pass
            self.peer.peer = None
            self.peer = None


def _resolve(fut: asyncio.Future[str], value: str) -> None:
    if not fut.done():
        fut.set_result(value)
