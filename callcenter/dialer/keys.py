"""Every Redis key of the dialer. One place, so a key rename is one diff."""

from __future__ import annotations

from callcenter.keyspace import KeySpace, key0, key1, key2


class DialerKeys(KeySpace):
    """The dialer's keys: campaigns, contacts, DNC, caps and leases."""

    campaign_state = key1("dialer:c:{cid}:state", "hash", "state (running|paused|stopped), updated")
    # phone, state, attempts, next_at, lease_owner, data (JSON)...
    contact = key2("dialer:c:{cid}:ct:{e164}", "hash", "one contact")
    due = key1("dialer:c:{cid}:due", "zset", "e164 -> epoch of next allowed attempt (only pending contacts)")
    lists = key1("dialer:c:{cid}:lists", "hash", "list_id -> JSON summary of an upload")
    lists_deleted = key1("dialer:c:{cid}:lists_deleted", "hash",
                         "list_id -> JSON summary of a deleted list whose dialed contacts stay in the export")
    list_contacts = key2("dialer:c:{cid}:list:{list_id}", "zset",
                         "e164 -> line: the contacts an upload made (the results export reads it in pages)")
    dnc_campaign = key1("dialer:c:{cid}:dnc", "set", "per-campaign do-not-call numbers")
    stats = key1("dialer:c:{cid}:stats", "hash", "counters: dials, outcomes, blocked:{reason}")
    ledger = key1("dialer:c:{cid}:ledger", "hash", "abandonment ledger: '{hour}:answered', '{hour}:abandoned'")
    dnc_global = key0("dialer:dnc", "set", "global do-not-call numbers")
    cap = key2("dialer:cap:{group}:{e164}", "zset", "attempt ids -> epoch: a cap group's rolling per-number cap")
    dialers = key0("dialer:dialers", "zset", "dialer process id -> last heartbeat epoch")
    leases = key1("dialer:leases:{dialer}", "set", "'{cid}|{e164}' contacts a dialer process is dialing now")
    dial_cap_number = key2("dialer:dcap:n:{day}:{e164}", "string", "callbacks to a number in one UTC day")
    dial_cap_source = key2("dialer:dcap:s:{hour}:{source}", "string", "callbacks from one source in one hour")

    @staticmethod
    def lease_member(cid: str, e164: str) -> str:
        return f"{cid}|{e164}"

    @staticmethod
    def split_lease(member: str) -> tuple[str, str]:
        cid, _, e164 = member.rpartition("|")
        return cid, e164
