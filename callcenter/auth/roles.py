"""The roles a user can hold, and the role sets routes declare.

A route says who may call it (``HttpRouter.add(..., roles=SUPERVISORS)``); there is no default, so a
new route cannot be added without deciding. ``PUBLIC`` is for ``POST /auth/login`` only.
"""

from __future__ import annotations

AGENT = "agent"                       # takes calls; acts only on its own agent id
SUPERVISOR = "supervisor"             # runs the floor: every agent's state, skills, queues, reports
CAMPAIGN_MANAGER = "campaign_manager"  # outbound: campaigns, lists, DNC, contacts, reports
ADMIN = "admin"                       # everything, plus rules, users and the audit log

ROLES = frozenset({AGENT, SUPERVISOR, CAMPAIGN_MANAGER, ADMIN})


class _Public(frozenset[str]):
    """The explicit "no credentials needed" marker (a distinct object, never equal by accident)."""

    def __repr__(self) -> str:
        return "PUBLIC"


PUBLIC: frozenset[str] = _Public()

ANYONE = ROLES                                               # any user holding at least one role
ADMINS = frozenset({ADMIN})
SUPERVISORS = frozenset({SUPERVISOR, ADMIN})
FLOOR_VIEW = frozenset({SUPERVISOR, CAMPAIGN_MANAGER, ADMIN})  # read-only queue/wallboard/report views
SELF_AGENT = frozenset({AGENT, SUPERVISOR, ADMIN})             # with own=...: an agent on itself
CAMPAIGNS = frozenset({CAMPAIGN_MANAGER, ADMIN})
DESK = frozenset({AGENT, CAMPAIGN_MANAGER, ADMIN})             # preview/contacts: with own="agent"


def check(roles: list[str] | tuple[str, ...] | set[str]) -> list[str]:
    """The roles, validated (ValueError names the unknown one)."""
    out: list[str] = []
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r} (roles: {', '.join(sorted(ROLES))})")
        if r not in out:
            out.append(r)
    return out
