"""What a call's IVR events mean for its disposition (inbound CDRs and outbound contacts alike).

A flow reports facts through ``IvrServices.emit``/``add_dnc`` ("promise_to_pay", "dnc", ...); the
strongest of them becomes the call's disposition code, and for the dialer decides whether the contact is
closed or rescheduled.
"""

from __future__ import annotations

from typing import Any

CALLBACK_DELAY = 3600.0      # the IVR said "agents busy, we will call you back"

# IVR events (flow ``event`` nodes) -> campaign disposition; higher rank wins when a flow emits several.
EVENT_DISPOSITION: dict[str, tuple[int, str]] = {
    "dnc": (100, "dnc"), "promise_to_pay": (90, "promise_to_pay"), "callback_requested": (80, "callback"),
    "not_interested": (70, "not_interested"), "already_paid": (60, "completed"), "interested": (50, "completed"),
    "agent_unavailable": (40, "completed"), "no_response": (30, "no_contact"),
}


def disposition_from_events(events: list[tuple[str, dict[str, Any]]], now: float) -> dict[str, Any] | None:
    """What the IVR's events mean for the contact (the engine's ``run_ivr`` result), or None."""
    best: tuple[int, str, str, dict[str, Any]] | None = None
    for name, data in events:
        rank = EVENT_DISPOSITION.get(name)
        if rank and (best is None or rank[0] >= best[0]):
            best = (rank[0], rank[1], name, data)
    if best is None:
        return None
    _rank, disp, name, data = best
    out: dict[str, Any] = {"disposition": disp, "ivr_event": name}
    if disp == "promise_to_pay":
        out.update(amount=str(data.get("amount", "")), date=str(data.get("date", "")))
    elif disp == "callback":
        out["at"] = now + CALLBACK_DELAY
    elif disp == "completed" and data:
        out.update({k: str(v) for k, v in data.items()})
    return out
