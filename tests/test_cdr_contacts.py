"""The agent's screen pop asks the CDR store for the caller's contacts of the last days (``SqlStore.contacts``):
by the customer's key (the CRM id, else the number), newest first, bounded, with their dispositions; an
index serves it, and a store made before the index gets it when opened. SQLite and a real PostgreSQL 15."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callcenter.cdr.record import CallRecord, Disposition
from callcenter.cdr.store import SqlStore
from callcenter.cdr.writer import open_store

T = 1_800_000_000.0
DAY = 86400.0
NUMBER = "0901000001"


def call(cid: str, start: float, *, caller: str = NUMBER, customer_id: str | None = None,
         direction: str = "inbound", queue: str | None = "support", agent: str | None = "1001",
         outcome: str = "answered") -> CallRecord:
    number = {"caller": caller, "called": "19001234"} if direction == "inbound" else \
        {"caller": "02873001234", "called": caller}
    return CallRecord(call_id=cid, direction=direction, start=start, queue=queue, agent_id=agent, outcome=outcome,
                      customer_id=customer_id, **number)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[SqlStore]:
    s = open_store(f"sqlite:///{tmp_path}/cdr.db" if request.param == "sqlite" else request.getfixturevalue("pg_dsn"))
    yield s
    s.close()


def test_contacts_by_number_or_customer_id_newest_first(store: SqlStore) -> None:
    store.put_call(call("old", T - 8 * DAY))                                        # outside 7 days
    store.put_call(call("a", T - 3 * DAY))
    store.put_call(call("b", T - 2 * DAY, customer_id="C-1", queue="billing"))     # keyed by the CRM id
    store.put_call(call("c", T - 1 * DAY, direction="outbound", queue=None, outcome="no_answer", agent=None))
    store.put_call(call("other", T - DAY, caller="0901000002"))
    store.put_call(call("now", T))                                                  # the offered call itself
    store.apply([("disp", Disposition("a", "complaint", False, T - 3 * DAY + 300, "1001").to_dict())])
    rows = store.contacts("C-1", NUMBER, T - 7 * DAY, T + 1, exclude="now")
    assert [r["call_id"] for r in rows] == ["c", "b", "a"]
    a = rows[-1]
    assert (a["disposition"], a["resolved"], a["queue"], a["agent_id"], a["direction"]) == \
        ("complaint", False, "support", "1001", "inbound")
    assert rows[0]["direction"] == "outbound" and rows[0]["outcome"] == "no_answer" and rows[0]["resolved"] is None
    assert [r["call_id"] for r in store.contacts(None, NUMBER, T - 7 * DAY, T + 1, exclude="now")] == ["c", "a"]
    assert [r["call_id"] for r in store.contacts("C-1", NUMBER, T - 7 * DAY, T + 1, limit=2)] == ["now", "c"]
    assert store.contacts(None, None, 0, T + 1) == []


def test_an_index_serves_the_query_and_an_older_store_gets_it(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/cdr.db"
    s = open_store(url)
    s._execute("DROP INDEX cdr_calls_cust_start")          # a store made before the index
    s.close()
    s = open_store(url)
    try:
        plan = " ".join(str(r[-1]) for r in s._execute(
            "EXPLAIN QUERY PLAN SELECT call_id FROM cdr_calls WHERE cust_key IN ('a', 'b') AND start_ts >= 0 "
            "AND start_ts < 1 ORDER BY start_ts DESC LIMIT 20").fetchall())
    finally:
        s.close()
    assert "cdr_calls_cust_start" in plan, plan
