import asyncio
import json
import random
import unicodedata

import pytest

from callcenter import yamlsrc
from callcenter.dialer.campaign import parse_campaign
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.upload import UploadError, UploadLimits, import_list, neutralise, parse_csv
from callcenter.redisconn import connect

CAMPAIGN_YAML = """
id: ts1
type: telesales
dial_mode: progressive
queue: sales
caller_id: "02873001234"
"""

MESSY = (
    "\ufeffHọ tên;Số điện thoại;amount_due;due_date;customer_id;note\r\n"     # line 1, BOM, ';' delimited
    "Nguyễn Văn A;0912 345 678;1.500.000;2026-12-01;C001;\r\n"               # 2 ok
    "Trần Thị B;(+84) 98.765.4321;200000;2026-12-02;C002;=HYPERLINK(\"http://x\")\r\n"  # 3 ok, formula note
    "Lê C;84912345678;;;C003;dup of line 2\r\n"                               # 4 duplicate of line 2
    ";;;;;\r\n"                                                               # 5 blank row
    "Phạm D;;100;2026-12-03;C004;\r\n"                                        # 6 empty phone
    "Hoàng E;0112345678;100;2026-12-03;C005;\r\n"                             # 7 bad prefix
    "Vũ F;=\"0387654321\";-5000;2026-12-04;C006;@SUM(A1)\r\n"                 # 8 ok: Excel text formula
    "Đỗ G;=1+1;1;2026-12-05;C007;\r\n"                                        # 9 formula in phone
    "Bùi H;024 3826 1234;300;2026-12-06;C008;+cmd|' /C calc'!A0\r\n"          # 10 landline ok, DDE injection
    "Ngô I;912345678;1;2026-12-07;C009;-2+3\r\n"                              # 11 ok (lost 0), '-2+3' neutralised
    "Dương K;0912345678;;;;extra;field\r\n"                                    # 12 too many fields
    "Lý L;8.4912345678E+10;1;;C010;\r\n"                                      # 13 scientific notation
    "Mai M;+84 912 345 678;;;C011;\ttab\r\n"                                  # 14 duplicate of 2 (formula-like +84 parses)
)


def campaign():
    data, loc = yamlsrc.loads(CAMPAIGN_YAML, "ts1.yaml")
    return parse_campaign(data, loc)


def test_messy_list_exact_report():
    p = parse_csv(MESSY.encode("utf-8"))
    assert p.encoding == "utf-8-sig" and p.delimiter == ";"
    assert p.phone_column == "Số điện thoại"
    assert p.rows == 12 and p.blank_rows == 1
    assert [c.e164 for c in p.contacts] == ["+84912345678", "+84987654321", "+84387654321", "+842438261234"]
    assert [c.line for c in p.contacts] == [2, 3, 8, 10]
    assert p.rejected == [
        {"line": 6, "reason": "phone is empty"},
        {"line": 7, "reason": "not a Vietnamese mobile or landline prefix (011)"},
        {"line": 9, "reason": "phone cell holds a formula, not a number"},
        {"line": 12, "reason": "row has 7 fields, header has 6 (unquoted ';' inside a value?)"},
        {"line": 13, "reason": "number in scientific notation (Excel); format the column as text and export again"},
    ]
    assert p.duplicates == [{"line": 4, "duplicate_of_line": 2}, {"line": 11, "duplicate_of_line": 2},
                            {"line": 14, "duplicate_of_line": 2}]
    first = p.contacts[0].data
    assert first["Họ tên"] == "Nguyễn Văn A" and first["amount_due"] == "1.500.000"
    assert first["note"] == "dup of line 2"          # blank filled from a later duplicate
    assert p.contacts[1].data["note"] == "'=HYPERLINK(\"http://x\")"
    assert p.contacts[2].data["note"] == "'@SUM(A1)"
    assert p.contacts[2].data["amount_due"] == "-5000"   # a plain number is not a formula
    assert p.contacts[3].data["note"] == "'+cmd|' /C calc'!A0"
    assert p.neutralised_cells == 4                   # lines 3, 8, 10, 11 (dup); a stripped tab is inert


def test_neutralise():
    for bad in ("=1+1", "+1+1", "-1+1", "@x", "\tx", "\rx"):
        assert neutralise(bad).startswith("'")
    assert neutralise("-1500") == "-1500" and neutralise("abc") == "abc"


def to_cp1258(text):
    out = b""
    for ch in text:
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            d = unicodedata.normalize("NFD", ch)       # e.g. ễ -> e + circumflex + tilde
            out += unicodedata.normalize("NFC", d[:-1]).encode("cp1258") + d[-1].encode("cp1258")
    return out


def test_comma_utf8_without_bom_and_cp1258():
    p = parse_csv(b"phone,name\n0912345678,\"Nguyen, A\"\n")
    assert p.delimiter == "," and p.contacts[0].data == {"name": "Nguyen, A"}
    p = parse_csv("sdt\tten\r\n0912345678\tNguyễn\r\n".encode("utf-16"))
    assert p.encoding == "utf-16" and p.contacts[0].data["ten"] == "Nguyễn"
    # CP1258 stores tone marks as combining characters (NFD); decoding recomposes them (NFC).
    raw = to_cp1258("sdt,ten\n0912345678,Nguyễn Văn Đức\n")
    p = parse_csv(raw)
    assert p.encoding == "cp1258" and p.contacts[0].data["ten"] == "Nguyễn Văn Đức"


def test_whole_file_errors():
    with pytest.raises(UploadError, match="no phone column"):
        parse_csv(b"name,amount\nA,1\n")
    with pytest.raises(UploadError, match="limit is 10 bytes"):
        parse_csv(b"phone\n0912345678\n", limits=UploadLimits(max_bytes=10))
    with pytest.raises(UploadError, match="more than 2 rows"):
        parse_csv(b"phone\n0912345671\n0912345672\n0912345673\n", limits=UploadLimits(max_rows=2))
    with pytest.raises(UploadError, match="empty"):
        parse_csv(b"  \n")
    with pytest.raises(UploadError, match="appears twice"):
        parse_csv(b"phone,name,name\n")


def test_upload_twice_is_idempotent_and_lists_merge(redis_url):
    async def go():
        r = connect(redis_url)
        keys, c = DialerKeys("t:"), campaign()
        p = parse_csv(MESSY.encode())
        rep1 = await import_list(r, keys, c, p, now=1000.0, list_id="L1")
        rep2 = await import_list(r, keys, c, parse_csv(MESSY.encode()), now=2000.0, list_id="L2")
        other = parse_csv("phone,city\n0912345678,Hà Nội\n0901111222,Huế\n".encode())
        rep3 = await import_list(r, keys, c, other, now=3000.0, list_id="L3")
        due = await r.zrange(keys.due("ts1"), 0, -1, withscores=True)
        ct = await r.hgetall(keys.contact("ts1", "+84912345678"))
        lists = await r.hgetall(keys.lists("ts1"))
        await r.aclose()
        return rep1, rep2, rep3, due, ct, lists

    rep1, rep2, rep3, due, ct, lists = asyncio.run(go())
    assert (rep1.accepted, rep1.merged_existing) == (4, 0)
    assert (rep2.accepted, rep2.merged_existing) == (0, 4)          # same file again: nobody re-queued
    assert (rep3.accepted, rep3.merged_existing) == (1, 1)          # across lists: merged
    assert len(due) == 5 and dict(due)["+84912345678"] == 1000.0   # schedule not reset by re-upload
    data = json.loads(ct["data"])
    assert data["city"] == "Hà Nội" and data["customer_id"] == "C001" and ct["list"] == "L1"
    assert set(lists) == {"L1", "L2", "L3"}
    body = rep1.as_dict()
    assert body["rejected_count"] == 5 and body["rejected"][0] == {"line": 6, "reason": "phone is empty"}


def test_100k_rows_generated(redis_url):
    rng = random.Random(7)
    formats = ["0{p}", "+84{p}", "84{p}", "{p}", "0{a} {b} {c}", "(+84) {a}.{b}.{c}", "0{a}-{b}-{c}"]
    lines, expected_bad, numbers = ["so_dien_thoai,ten,amount_due"], 0, set()
    for i in range(100_000):
        if i % 97 == 0:
            lines.append(f"012{i % 10}{i:06d}x,Bad {i},1")
            expected_bad += 1
            continue
        n = f"{rng.choice('35789')}{rng.randrange(10**8):08d}"
        numbers.add(n)
        f = rng.choice(formats)
        lines.append(f.format(p=n, a=n[:2], b=n[2:5], c=n[5:]) + f",Khách {i},{rng.randrange(10**6)}")
    data = ("\n".join(lines) + "\n").encode()
    ticks = []
    p = parse_csv(data, progress=lambda done, total: ticks.append((done, total)))
    assert p.rows == 100_000 and len(p.rejected) == expected_bad
    assert all(r["reason"] == "unexpected character 'x' in phone" for r in p.rejected)
    assert p.rejected[1]["line"] == 97 + 2
    assert len(p.contacts) == len(numbers) and len(p.contacts) + len(p.duplicates) + expected_bad == 100_000
    assert ticks and ticks[-1][0] == ticks[-1][1]

    async def go():
        r = connect(redis_url)
        keys = DialerKeys("t:")
        rep = await import_list(r, keys, campaign(), p, now=1.0)
        n = await r.zcard(keys.due("ts1"))
        await r.aclose()
        return rep, n

    rep, n = asyncio.run(go())
    assert rep.accepted == len(numbers) == n
