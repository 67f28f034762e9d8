"""A mono tap on one leg's received audio: a pjsua2 ``AudioMediaRecorder`` fed only by that leg.

pjmedia's clock thread writes the WAV (the conference bridge pushes one 20 ms frame per tick to the
recorder's port), so the asyncio loop never touches the audio. The object is created, muted and freed
on the loop thread only (see HACKING.md: pjsua2 objects live on the loop thread).

Pause mutes what the bridge sends to the recorder: the bridge keeps writing frames, now silent, so a
paused stretch keeps its length in the timeline. In pjsua2 that is ``adjustRxLevel(0)`` on the recorder:
pjsua2 names levels from the media's side (``AudioMedia::adjustRxLevel`` calls
``pjsua_conf_adjust_tx_level``, the bridge's transmission to the port; ``adjustTxLevel`` would scale
what the recorder sends, which is nothing).
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable

import pjsua2 as pj

from callcenter.exceptions import TelephonyError
from callcenter.telephony.api import Leg
from callcenter.telephony.leg import PjLeg

_PJ_ERRNO_START_SYS = 120000   # PJ_ERRNO_START_SYS: pj_status_t of an OS errno (pj/errno.h)
_PJ_ETOOMANY = 70010           # PJ_ETOOMANY: PJSUA_MAX_RECORDERS (config_site.h) or conference ports used up


class TapError(TelephonyError):
    """The tap could not start; ``reason`` is a metric label (``disk_full``, ``too_many``, ``write_error``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _reason(status: int) -> str:
    if status == _PJ_ETOOMANY:
        return "too_many"
    return "disk_full" if status - _PJ_ERRNO_START_SYS in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) \
        else "write_error"


class PjTap:
    """What ``leg`` receives from its party, written to ``path`` (8 kHz mono 16-bit WAV); :meth:`mix` adds
    (or takes out) another leg's, mixed by the bridge (a conference party in the agent's channel)."""

    def __init__(self, leg: Leg, path: str) -> None:
        _media(leg)
        self._recorder: pj.AudioMediaRecorder | None = pj.AudioMediaRecorder()
        try:
            self._recorder.createRecorder(path)
        except pj.Error as exc:
            self._recorder = None
            raise TapError(f"cannot record to {path}: {exc.info()}", _reason(int(exc.status))) from None
        # each leg fed in: the bridge port it feeds from and its media listener
        self._sources: dict[PjLeg, tuple[pj.AudioMedia, Callable[[], None]]] = {}
        self.mix(leg, True)

    def mix(self, leg: Leg, on: bool) -> None:
        recorder = self._recorder
        if not on:
            self._stop(leg)
            return
        source = _media(leg)
        if recorder is None or leg in self._sources:
            return
        assert isinstance(leg, PjLeg)
        follow = functools.partial(self._follow, leg)
        source.startTransmit(recorder)
        self._sources[leg] = (source, follow)
        leg.media_listeners.append(follow)

    def _follow(self, leg: PjLeg) -> None:
        """A re-INVITE (a hold from the phone) made pjsua re-create the leg's stream, on another conference
        slot: feed the recorder from the new one (the old one left the bridge with its connections)."""
        recorder, fed = self._recorder, self._sources.get(leg)
        if recorder is None or fed is None or leg.audio is None or fed[0].getPortId() == leg.audio.getPortId():
            return
        self._sources[leg] = (leg.audio, fed[1])
        try:
            leg.audio.startTransmit(recorder)
        except pj.Error as exc:
            leg.log.warning("recording tap not reconnected", error=exc.info())

    def _stop(self, leg: Leg) -> None:
        fed = self._sources.pop(leg, None) if isinstance(leg, PjLeg) else None
        if fed is None or not isinstance(leg, PjLeg):
            return
        source, follow = fed
        if follow in leg.media_listeners:
            leg.media_listeners.remove(follow)
        if self._recorder is not None and not leg.ended:
            try:
                source.stopTransmit(self._recorder)
            except pj.Error:
                pass   # the leg's port already left the bridge

    def mute(self, muted: bool) -> None:
        if self._recorder is not None:
            self._recorder.adjustRxLevel(0.0 if muted else 1.0)

    def close(self) -> None:
        """Stop feeding the recorder and free it (the WAV header is written as pjmedia closes the file)."""
        for leg in list(self._sources):
            self._stop(leg)
        recorder, self._recorder = self._recorder, None
        del recorder


def _media(leg: Leg) -> pj.AudioMedia:
    if not isinstance(leg, PjLeg):
        raise TelephonyError("only a pjsua2 leg can be recorded")
    if leg.audio is None:
        raise TelephonyError("the leg has no media to record")
    return leg.audio
