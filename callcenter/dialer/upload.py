"""Call-list upload: CSV bytes -> validated contacts -> Redis, with a per-row report.

Real lists come out of Excel and CRMs: UTF-8 with or without BOM, UTF-16 "Unicode text",
Windows-1258, ``;`` in Vietnamese/European locales, phone columns that lost their leading 0,
``="0912..."`` text formulas, blank and duplicated rows, and cells that would run as formulas
when someone opens the exported report (CSV injection). Whole-file problems raise
:class:`UploadError`; row problems land in the report with their line number.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from callcenter import logs
from callcenter.dialer import phone
from callcenter.dialer.campaign import Campaign
from callcenter.dialer.keys import DialerKeys
from callcenter.dialer.scripts import script
from callcenter.exceptions import CallcenterError

log = logs.get("dialer.upload")

PHONE_HEADERS = ("phone", "phone_number", "phonenumber", "so_dien_thoai", "sodienthoai", "sdt", "dien_thoai",
                 "dienthoai", "mobile", "msisdn", "tel", "telephone", "so_dt", "didong", "di_dong")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)*$")
_TEXT_FORMULA = re.compile(r'^="(.*)"$')
BATCH = 500

Progress = Callable[[int, int], None]


class UploadError(CallcenterError):
    """The file as a whole cannot be used (too big, not text, no phone column)."""


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 50 * 1024 * 1024
    max_rows: int = 500_000
    max_columns: int = 200           # real lists have tens; every row is a dict of them in Redis
    max_cell: int = 4096             # characters in one cell (a row with a longer one is rejected)
    # Cells kept in memory for the whole list (rows x columns): 50 MiB of ";;;;" would otherwise
    # become gigabytes of dicts. 500k rows of 10 columns fit.
    max_cells: int = 5_000_000


@dataclass
class ParsedContact:
    e164: str
    line: int
    data: dict[str, str]


@dataclass
class ParsedList:
    encoding: str
    delimiter: str
    columns: list[str]
    phone_column: str
    rows: int = 0
    blank_rows: int = 0
    neutralised_cells: int = 0
    contacts: list[ParsedContact] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, int]] = field(default_factory=list)


def neutralise(cell: str) -> str:
    """Make a cell inert for spreadsheets (OWASP CSV injection): prefix a quote to formula starts.
    Plain numbers like -1500 stay as they are: no spreadsheet evaluates them as code."""
    if cell and cell.startswith(FORMULA_START) and not _PLAIN_NUMBER.match(cell):
        return "'" + cell
    return cell


def decode(data: bytes) -> tuple[str, str]:
    """Text and the encoding used. UTF-8 (BOM or not), UTF-16 with BOM, else Windows-1258."""
    if data.startswith(b"\xef\xbb\xbf"):
        return str(memoryview(data)[3:], "utf-8"), "utf-8-sig"    # (no copy of the bytes first)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        # CP1258 writes Vietnamese with combining tone marks; NFC makes "Nguyễn" compare equal.
        return unicodedata.normalize("NFC", data.decode("cp1258")), "cp1258"
    except UnicodeDecodeError as exc:
        raise UploadError(f"file is neither UTF-8 nor Windows-1258 text (byte {exc.start})") from None


def _header_key(name: str) -> str:
    s = unicodedata.normalize("NFD", name.strip().lower()).replace("đ", "d")
    s = "".join(c for c in s if unicodedata.category(c) != "Mn")
    return re.sub(r"[^a-z0-9]+", "_", s).strip("_")


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: 0 for d in (",", ";", "\t", "|")}
    quoted = False
    for ch in first_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _lines(text: str) -> Iterator[str]:
    """The lines of text with their ends, as ``open(newline="")`` splits them, one at a time (an
    io.StringIO of a 50 MB list would keep a second, four-bytes-a-character copy of it)."""
    return (m.group() for m in _LINE.finditer(text))


def parse_csv(data: bytes | BinaryIO, region: str = "VN", limits: UploadLimits | None = None,
              progress: Progress | None = None) -> ParsedList:
    """Parse and validate a call list. Pure: no Redis. Raises UploadError for whole-file problems.

    ``data`` may be a binary file (an upload spooled to disk): it is read here, and once decoded
    the bytes are dropped, so a big list is not held twice while it is parsed. Blocking: run it
    in a thread."""
    limits = limits or UploadLimits()
    if not isinstance(data, bytes | bytearray):
        data = data.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise UploadError(f"file is {len(data)} bytes; the limit is {limits.max_bytes} bytes")
    if not data or data.isspace():
        raise UploadError("file is empty")
    text, encoding = decode(data)
    del data
    if "\x00" in text:
        raise UploadError("file contains NUL bytes; it is not a CSV text file (an .xlsx? export it as CSV)")
    end = text.find("\n")
    delimiter = _sniff_delimiter(text if end < 0 else text[:end])
    reader = csv.reader(_lines(text), delimiter=delimiter)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise UploadError(f"line 1: header is not valid CSV: {exc}") from None
    if len(header) > limits.max_columns:
        raise UploadError(f"line 1: header has {len(header)} columns; the limit is {limits.max_columns}")
    columns: list[str] = []
    seen_names: set[str] = set()
    for i, h in enumerate(header):
        name = h.strip().lstrip("\ufeff") or f"column_{i + 1}"
        if name in seen_names:
            raise UploadError(f"line 1: column {name[:60]!r} appears twice in the header")
        seen_names.add(name)
        columns.append(name)
    key_index: dict[str, int] = {}
    for i, c in enumerate(columns):
        key_index.setdefault(_header_key(c), i)
    phone_idx = next((key_index[k] for k in PHONE_HEADERS if k in key_index), None)
    if phone_idx is None:
        raise UploadError(f"line 1: no phone column; name one of: phone, so_dien_thoai, sdt, mobile "
                          f"(found: {', '.join(columns)})")
    out = ParsedList(encoding, delimiter, columns, columns[phone_idx])
    cells = 0
    seen: dict[str, ParsedContact] = {}
    total_lines = text.count("\n") + 1
    line = 1
    while True:
        start = line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            out.rejected.append({"line": start, "reason": f"broken CSV: {exc}"})
            line = reader.line_num
            continue
        line = reader.line_num
        if not any(c.strip() for c in row):
            out.blank_rows += 1
            continue
        out.rows += 1
        if out.rows > limits.max_rows:
            raise UploadError(f"file has more than {limits.max_rows} rows; split it into smaller lists")
        if progress and out.rows % 5000 == 0:
            progress(line, total_lines)
        if any(len(c) > limits.max_cell for c in row):
            out.rejected.append({"line": start, "reason": f"a cell has more than {limits.max_cell} characters"})
            continue
        if len(row) > len(columns) and any(c.strip() for c in row[len(columns):]):
            out.rejected.append({"line": start, "reason": f"row has {len(row)} fields, header has {len(columns)} "
                                 f"(unquoted '{delimiter}' inside a value?)"})
            continue
        raw_phone = row[phone_idx] if phone_idx < len(row) else ""
        m = _TEXT_FORMULA.match(raw_phone.strip())
        if m:
            raw_phone = m.group(1)              # Excel's ="0912345678" keeps the leading zero
        elif raw_phone.strip().startswith(("=", "@")):
            out.rejected.append({"line": start, "reason": "phone cell holds a formula, not a number"})
            continue
        try:
            e164 = phone.normalize(raw_phone, region)
        except phone.PhoneError as exc:
            out.rejected.append({"line": start, "reason": exc.reason})
            continue
        fields: dict[str, str] = {}
        for i, name in enumerate(columns):
            if i == phone_idx:
                continue
            cell = row[i].strip() if i < len(row) else ""
            safe = neutralise(cell)
            if safe != cell:
                out.neutralised_cells += 1
            fields[name] = safe
        prior = seen.get(e164)
        if prior is not None:
            for k, v in fields.items():
                if v and not prior.data.get(k):
                    prior.data[k] = v
            out.duplicates.append({"line": start, "duplicate_of_line": prior.line})
            continue
        cells += len(fields) + 1
        if cells > limits.max_cells:
            raise UploadError(f"list has more than {limits.max_cells} cells (rows x columns); split it into "
                              "smaller lists")
        contact = ParsedContact(e164, start, fields)
        seen[e164] = contact
        out.contacts.append(contact)
    if progress:
        progress(total_lines, total_lines)
    return out


@dataclass
class UploadReport:
    list_id: str
    campaign: str
    encoding: str
    delimiter: str
    columns: list[str]
    phone_column: str
    rows: int
    blank_rows: int
    accepted: int                 # new contacts queued for dialing
    merged_existing: int          # already in the campaign (this or another list): not re-queued
    duplicates_in_file: list[dict[str, int]]
    rejected: list[dict[str, Any]]
    neutralised_cells: int

    def as_dict(self) -> dict[str, Any]:
        return {"list_id": self.list_id, "campaign": self.campaign, "encoding": self.encoding,
                "delimiter": self.delimiter, "columns": self.columns, "phone_column": self.phone_column,
                "rows": self.rows, "blank_rows": self.blank_rows, "accepted": self.accepted,
                "merged_existing": self.merged_existing, "duplicates_in_file": self.duplicates_in_file,
                "rejected_count": len(self.rejected), "rejected": self.rejected,
                "neutralised_cells": self.neutralised_cells}


async def import_list(redis: Any, keys: DialerKeys, campaign: Campaign, parsed: ParsedList, now: float,
                      list_id: str | None = None, progress: Progress | None = None) -> UploadReport:
    """Store parsed contacts (idempotent on campaign + E.164) and record the list's summary."""
    list_id = list_id or uuid.uuid4().hex[:12]
    run = script(redis, "import")
    accepted = merged = 0
    total = len(parsed.contacts)
    for i in range(0, total, BATCH):
        batch = parsed.contacts[i:i + BATCH]
        args: list[Any] = [repr(now), list_id]
        for c in batch:
            args += [c.e164, c.line, json.dumps(c.data, ensure_ascii=False)]
        res = await run(keys=[keys.due(campaign.id), keys.list_contacts(campaign.id, list_id)]
                        + [keys.contact(campaign.id, c.e164) for c in batch], args=args)
        new = sum(int(x) for x in res)
        accepted += new
        merged += len(batch) - new
        if progress:
            progress(min(total, i + BATCH), total)
    report = UploadReport(list_id, campaign.id, parsed.encoding, parsed.delimiter, parsed.columns,
                          parsed.phone_column, parsed.rows, parsed.blank_rows, accepted, merged, parsed.duplicates,
                          parsed.rejected, parsed.neutralised_cells)
    summary = {k: v for k, v in report.as_dict().items() if k not in ("rejected", "duplicates_in_file")}
    summary["uploaded_at"] = now
    summary["indexed"] = True         # its contacts are in keys.list_contacts (export.results_csv)
    await redis.hset(keys.lists(campaign.id), list_id, json.dumps(summary, ensure_ascii=False))
    log.info("list uploaded", campaign=campaign.id, list_id=list_id, rows=parsed.rows, accepted=accepted,
             merged=merged, rejected=len(parsed.rejected))
    return report
