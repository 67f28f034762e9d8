"""Every Redis key of the dialer. One place, so a key rename is one diff.

Layout (prefix ``cc:`` by default):
  dialer:c:{cid}:state      hash  state (running|paused|stopped), updated
  dialer:c:{cid}:ct:{e164}  hash  one contact: phone, state, attempts, next_at, lease_owner, data (JSON)...
  dialer:c:{cid}:due        zset  e164 -> epoch of next allowed attempt (only pending contacts)
  dialer:c:{cid}:lists      hash  list_id -> JSON summary of an upload
  dialer:c:{cid}:dnc        set   per-campaign do-not-call numbers
  dialer:c:{cid}:stats      hash  counters: dials, outcomes, blocked:{reason}
  dialer:c:{cid}:ledger     hash  "{hour}:answered" / "{hour}:abandoned" counters (abandonment ledger)
  dialer:dnc                set   global do-not-call numbers
  dialer:cap:{group}:{e164} zset  attempt ids -> epoch, rolling per-number cap shared by a cap group
  dialer:dialers            zset  dialer process id -> last heartbeat epoch
  dialer:leases:{dialer}    set   "{cid}|{e164}" contacts a dialer process is dialing right now
  dialer:dcap:n:{day}:{e164}    string  callbacks to a number in one UTC day (dial policy cap)
  dialer:dcap:s:{hour}:{source} string  callbacks requested from one source in one hour
"""

from __future__ import annotations


class DialerKeys:
    def __init__(self, prefix: str = "cc:") -> None:
        self.base = f"{prefix}dialer:"

    def _c(self, cid: str) -> str:
        return f"{self.base}c:{cid}:"

    def campaign_state(self, cid: str) -> str:
        return self._c(cid) + "state"

    def contact(self, cid: str, e164: str) -> str:
        return self._c(cid) + f"ct:{e164}"

    def due(self, cid: str) -> str:
        return self._c(cid) + "due"

    def lists(self, cid: str) -> str:
        return self._c(cid) + "lists"

    def dnc_campaign(self, cid: str) -> str:
        return self._c(cid) + "dnc"

    def stats(self, cid: str) -> str:
        return self._c(cid) + "stats"

    def ledger(self, cid: str) -> str:
        return self._c(cid) + "ledger"

    def dnc_global(self) -> str:
        return self.base + "dnc"

    def cap(self, group: str, e164: str) -> str:
        return f"{self.base}cap:{group}:{e164}"

    def dialers(self) -> str:
        return self.base + "dialers"

    def leases(self, dialer_id: str) -> str:
        return f"{self.base}leases:{dialer_id}"

    def dial_cap_number(self, day: int, e164: str) -> str:
        return f"{self.base}dcap:n:{day}:{e164}"

    def dial_cap_source(self, hour: int, source: str) -> str:
        return f"{self.base}dcap:s:{hour}:{source}"

    @staticmethod
    def lease_member(cid: str, e164: str) -> str:
        return f"{cid}|{e164}"

    @staticmethod
    def split_lease(member: str) -> tuple[str, str]:
        cid, _, e164 = member.rpartition("|")
        return cid, e164
