"""The IVR script parser: one YAML file in ``ivr_scripts/`` is one script (a flow)::

    name: hotline               # defaults to the file name
    languages: [vi, en]         # every prompt must exist in each of these
    default_language: vi
    start: welcome
    calendar: hotline           # business hours from ivr_scripts/calendar.yaml
    on_error: sorry             # where a failing node goes when it has no on_error of its own
    variables: {force_hours: ""}
    nodes:
      welcome: {type: play, prompts: [welcome], next: menu}

Each node type has one parse function (``PARSERS``) that reads its fields into that type's options
(:mod:`callcenter.ivr.model`). Parsing never stops at the first problem: the :class:`yamlsrc.Reader`
collects every issue with file, line and node, so ``callcenter ivr check`` lists them all at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from callcenter import yamlsrc
from callcenter.exceptions import ConfigError
from callcenter.ivr import expr
from callcenter.ivr.calendar import Calendars
from callcenter.ivr.model import (
    BranchOptions,
    CollectOptions,
    DncOptions,
    EventOptions,
    GotoOptions,
    IvrIssue,
    LanguageOptions,
    LookupOptions,
    MenuOption,
    MenuOptions,
    Node,
    Options,
    PromptItem,
    Prompts,
    Question,
    QueueAnnounce,
    QueueOptions,
    RecordOptions,
    Script,
    ScriptSet,
    SetOptions,
    SurveyOptions,
    TransferOptions,
)
from callcenter.ivr.saynumber import CURRENCIES, LANGUAGES, SAY_KINDS
from callcenter.yamlsrc import Reader, shown

DTMF = set("0123456789*#")
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# "welcome", "queue/all_busy", or "en:lang/for_english" (always played from sounds/en/).
_PROMPT = re.compile(r"^(?:(?:vi|en):)?[a-z0-9_][a-z0-9_/-]*$")
SAY_OPTION_FIELDS = ("le", "tu", "mung")
_LE = ("le", "linh")
_SAY_FIELDS = ("say", "value", "currency", *SAY_OPTION_FIELDS)


# ---------------------------------------------------------------- field readers

def _ref(r: Reader, key: str, required: bool = False) -> str | None:
    """A node id of the same script."""
    v = r.text(key, required=required)
    if v is not None and not _ID.match(v):
        r.error(key, f"not a node id: {v!r}")
        return None
    return v


def _seconds(r: Reader, key: str, default: float, lo: float = 0.1, hi: float = 86400) -> float:
    return r.duration(key, default, lo, hi)


def _count(r: Reader, key: str, default: int, lo: int = 1, hi: int = 100) -> int:
    return r.integer(key, default, lo, hi)


def _prompts(r: Reader, key: str, required: bool = False) -> Prompts:
    """A prompt list; a single prompt may stand alone (``prompts: welcome``)."""
    v = r.raw(key, required=required)
    if v is None:
        return ()
    if not isinstance(v, list | str):
        r.error(key, f"expected a list of prompts, got {shown(v)}")
        return ()
    out = []
    for i, item in enumerate([v] if isinstance(v, str) else v):
        p = _prompt_item(r, f"{key}[{i}]", item)
        if p:
            out.append(p)
    return tuple(out)


def _prompt_item(r: Reader, key: str, item: object) -> PromptItem | None:
    if isinstance(item, str):
        if not _PROMPT.match(item):
            r.error(key, f"bad prompt name {item!r} (lower-case letters, digits, _ - /, optional lang: prefix; "
                         "no extension)")
            return None
        return PromptItem(name=item)
    if isinstance(item, dict) and "say" in item:
        before = len(r.issues.found)
        said = _say_item(Reader(item, r.loc, r.key_path(key), known=_SAY_FIELDS, issues=r.issues))
        return said if len(r.issues.found) == before else None
    r.error(key, "a prompt is a name or {say: kind, value: ...}")
    return None


def _say_item(r: Reader) -> PromptItem | None:
    """``{say: number, value: "{amount}", currency: VND, le: linh, tu: true, mung: true}`` (a prompt list's
    item, or a say node's own fields); None when anything is wrong (the issues say what)."""
    before = len(r.issues.found)
    kind = r.text("say", required=True, choices=(*SAY_KINDS, "text"))
    value = r.raw("value", required=True)
    if value is not None and (isinstance(value, bool) or not isinstance(value, str | int | float)):
        r.error("value", f"expected a string or a number, got {shown(value)}")
    currency = r.text("currency", "VND").upper()
    if currency not in CURRENCIES:
        r.error("currency", f"expected one of {', '.join(CURRENCIES)}, got {shown(currency)}")
    # Vietnamese wording: lẻ or linh for the zero ten in 105, tư for 4 after mươi, mùng before days 1-10
    le = r.text("le", "le", choices=_LE)
    tu, mung = r.flag("tu", False), r.flag("mung", False)
    words = [f for f in SAY_OPTION_FIELDS if f in r]
    if words and kind in ("digits", "text"):
        r.error(None, f"{', '.join(words)}: no effect when saying {kind} (numbers, currency, dates, times)")
    elif "mung" in r and kind != "date":
        r.error(None, "mung: only for say: date (mùng before days 1-10)")
    if len(r.issues.found) > before or kind is None or value is None:
        return None
    return PromptItem(say=kind, value=str(value), currency=currency, le=le, tu=tu, mung=mung)


def _skills(r: Reader) -> dict[str, int] | None:
    """``skills: [billing]`` (level 1) or ``skills: {billing: 3}`` (minimum levels 0-100)."""
    raw = r.raw("skills")
    if raw is None:
        return None
    if isinstance(raw, list):
        raw = {str(s): 1 for s in raw}
    levels = Reader(raw, r.loc, r.key_path("skills"), issues=r.issues)
    out = {}
    for k in levels.keys():
        level = levels.integer(k, None, 0, 100)
        if level is not None:
            out[k] = level
    return out


# ---------------------------------------------------------------- nodes

@dataclass
class _Head:
    """The fields every node has, read before its type's own; a say node adds to the prompts."""

    id: str
    type: str
    prompts: Prompts
    on_error: str | None


def _play(r: Reader, head: _Head) -> Options:
    return Options()


def _say(r: Reader, head: _Head) -> Options:
    item = _say_item(r)
    head.prompts = head.prompts + ((item,) if item else ()) + _prompts(r, "after")
    return Options()


def _digit_options(r: Reader) -> dict[str, object]:
    """The ``options`` of a menu or a language node, keys checked as DTMF digits."""
    out: dict[str, object] = {}
    for d, target in r.mapping("options", required=True).items():
        if len(d) != 1 or d not in DTMF:
            r.error(f"options.{d}", f"bad digit {d!r}: one of 0-9, * or #")
        else:
            out[d] = target
    return out


def _menu(r: Reader, head: _Head) -> MenuOptions:
    options: dict[str, MenuOption] = {}
    for d, target in _digit_options(r).items():
        if isinstance(target, str) and _ID.match(target):
            options[d] = MenuOption(target)
        elif isinstance(target, dict) and isinstance(target.get("next"), str) and set(target) <= {"next", "set"} \
                and isinstance(target.get("set", {}), dict):
            options[d] = MenuOption(target["next"], {str(k): v for k, v in target.get("set", {}).items()})
        else:
            r.error(f"options.{d}", "an option is a node id or {next: node, set: {var: value}}")
    return MenuOptions(options, timeout=_seconds(r, "timeout", 5.0), attempts=_count(r, "attempts", 3),
                       invalid_prompts=_prompts(r, "invalid_prompts"), timeout_prompts=_prompts(r, "timeout_prompts"),
                       default=_ref(r, "default"))


def _language(r: Reader, head: _Head) -> LanguageOptions:
    options: dict[str, str] = {}
    for d, target in _digit_options(r).items():
        if isinstance(target, str) and target in LANGUAGES:
            options[d] = target
        else:
            r.error(f"options.{d}", f"expected one of {', '.join(LANGUAGES)}, got {shown(target)}")
    return LanguageOptions(options, timeout=_seconds(r, "timeout", 5.0), attempts=_count(r, "attempts", 3),
                           invalid_prompts=_prompts(r, "invalid_prompts"),
                           timeout_prompts=_prompts(r, "timeout_prompts"),
                           default_language=r.text("default", choices=LANGUAGES),
                           ask_always=r.flag("ask_always", False))


def _collect(r: Reader, head: _Head) -> CollectOptions:
    variable = r.text("variable", "", required=True)
    max_digits, min_digits = _count(r, "max_digits", 1, 1, 64), _count(r, "min_digits", 1, 1, 64)
    raw_term = r.raw("terminator", "#")
    term = str(raw_term) if raw_term != "" else None
    if term is not None and (len(term) != 1 or term not in DTMF):
        r.error("terminator", f"bad digit {term!r}: one of 0-9, * or # (or '' for none)")
        term = "#"
    timeout, inter_digit = _seconds(r, "timeout", 5.0), _seconds(r, "inter_digit_timeout", 3.0)
    attempts = _count(r, "attempts", 3)
    pattern = r.text("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            r.error("pattern", f"bad regular expression: {exc}")
            pattern = None
    validate = r.text("validate", choices=("date", "future_date"))
    if min_digits > max_digits:
        r.error("min_digits", "is more than max_digits")
    return CollectOptions(variable, max_digits=max_digits, min_digits=min_digits, terminator=term, timeout=timeout,
                          inter_digit_timeout=inter_digit, attempts=attempts, pattern=pattern, validate=validate,
                          invalid_prompts=_prompts(r, "invalid_prompts"),
                          timeout_prompts=_prompts(r, "timeout_prompts"), on_invalid=_ref(r, "on_invalid"),
                          sensitive=r.flag("sensitive", False))


def _branch(r: Reader, head: _Head) -> BranchOptions:
    cases = []
    for i, case in enumerate(r.items("cases", required=True)):
        key = f"cases[{i}]"
        if not isinstance(case, dict) or set(case) != {"when", "next"}:
            r.error(key, "a case is {when: condition, next: node}")
            continue
        try:
            cond = expr.parse(str(case["when"]))
        except expr.ExprError as exc:
            r.error(f"{key}.when", f"bad condition: {exc}")
            continue
        if not isinstance(case["next"], str) or not _ID.match(case["next"]):
            r.error(f"{key}.next", "not a node id")
            continue
        cases.append((cond, case["next"]))
    return BranchOptions(tuple(cases), default=_ref(r, "default", required=True))


def _set(r: Reader, head: _Head) -> SetOptions:
    return SetOptions(variables=r.mapping("variables"), queue=r.text("queue"), skills=_skills(r),
                      priority=r.integer("priority"), language=r.text("language", choices=LANGUAGES))


def _queue(r: Reader, head: _Head) -> QueueOptions:
    a = r.section("announce", ("position", "wait_time", "every"))
    return QueueOptions(
        queue=r.text("queue"), skills=_skills(r), priority=r.integer("priority"),
        max_wait=_seconds(r, "max_wait", 300.0, 1, 7200), callback_offer=r.flag("callback_offer", False),
        callback_after=_seconds(r, "callback_after", 60.0, 0, 7200),
        announce=QueueAnnounce(a.flag("position", True), a.flag("wait_time", True), a.duration("every", 45.0)),
        music=r.text("music", "moh"), after_agent=_ref(r, "after_agent"), on_timeout=_ref(r, "on_timeout"),
        on_full=_ref(r, "on_full"), on_callback=_ref(r, "on_callback"), on_no_agents=_ref(r, "on_no_agents"),
        on_failure=_ref(r, "on_failure"))


def _transfer(r: Reader, head: _Head) -> TransferOptions:
    uri = r.text("uri", "", required=True)
    if uri and not re.match(r"^(sips?:|tel:|\{)", uri):
        r.error("uri", "must be a sip:, sips: or tel: URI")
    # where a templated uri may lead (fnmatch patterns); a fixed uri is its own allow-list
    allow = tuple(str(p) for p in r.items("allow"))
    for i, pat in enumerate(allow):
        if not re.match(r"^(sips?|tel):", pat):
            r.error(f"allow[{i}]", "must be a sip:, sips: or tel: URI pattern")
    return TransferOptions(uri, allow)


def _record(r: Reader, head: _Head) -> RecordOptions:
    return RecordOptions(variable=r.text("variable", "recording"), max_seconds=_seconds(r, "max_seconds", 120.0, 1, 3600),
                         silence_seconds=r.duration("silence_seconds", 5.0), beep=_prompts(r, "beep"))


def _lookup(r: Reader, head: _Head) -> LookupOptions:
    method = r.text("method", "GET").upper()
    if method not in ("GET", "POST"):
        r.error("method", f"expected one of GET, POST, got {shown(method)}")
    url = r.text("url", "", required=True)
    if url and not re.match(r"^(https?://|\$\{)", url):
        r.error("url", "must start with http:// or https:// (or ${ENV_VAR})")
    if head.on_error is None:
        r.error(None, "a lookup needs on_error: the path the call takes when the server is slow or wrong")
    return LookupOptions(url, method=method, params=r.mapping("params"), headers=r.mapping("headers"),
                         timeout=_seconds(r, "timeout", 2.0, 0.05, 30),
                         result={k: str(v) for k, v in r.mapping("result").items()})


def _survey(r: Reader, head: _Head) -> SurveyOptions:
    questions = []
    for i, raw in enumerate(r.items("questions", required=True)):
        key = f"questions[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            r.error(key, "a question is {id: name, prompts: [...], min: 1, max: 5}")
            continue
        q = Reader(raw, r.loc, r.key_path(key), issues=r.issues)
        qid = q.text("id", "")
        prompts = _prompts(q, "prompts", required=True)
        lo, hi = _count(q, "min", 1, 0, 9), _count(q, "max", 5, 0, 9)
        if lo > hi:
            q.error("min", "is more than max")
        q.finish()
        questions.append(Question(qid, prompts, lo, hi))
    return SurveyOptions(tuple(questions), attempts=_count(r, "attempts", 2), timeout=_seconds(r, "timeout", 6.0),
                         invalid_prompts=_prompts(r, "invalid_prompts"))


def _event(r: Reader, head: _Head) -> EventOptions:
    return EventOptions(r.text("name", "", required=True), r.mapping("data"))


def _dnc(r: Reader, head: _Head) -> DncOptions:
    return DncOptions(scope=r.text("scope", "global"), number=r.text("number", "{caller}"))


def _goto(r: Reader, head: _Head) -> GotoOptions:
    return GotoOptions(r.text("script", "", required=True), _ref(r, "node"))


# node type -> the function that reads its own fields
PARSERS: dict[str, Callable[[Reader, _Head], Options]] = {
    "play": _play, "say": _say, "menu": _menu, "language": _language, "collect": _collect, "branch": _branch,
    "set": _set, "queue": _queue, "transfer": _transfer, "record": _record, "lookup": _lookup, "survey": _survey,
    "event": _event, "dnc": _dnc, "goto": _goto, "hangup": _play,
}
NODE_TYPES = tuple(PARSERS)
# node types a caller answers by keys: a prompt is cut short by the first one unless barge_in: false
_BARGE_IN = ("menu", "language", "collect", "survey")


def _issues(found: list[ConfigError], base: str, node: str | None) -> list[IvrIssue]:
    """The reader's problems as the checker words them: ``file:line: node: field: message``."""
    out = []
    for e in found:
        key = e.key or ""
        rel = key[len(base) + 1:] if base and key.startswith(base + ".") else ("" if key == base else key)
        out.append(IvrIssue(e.file or "", e.line, node, f"{rel}: {e.message}" if rel else e.message))
    return out


def _parse_node(nid: str, raw: object, loc: yamlsrc.Located, issues: list[IvrIssue]) -> Node | None:
    path = f"nodes.{nid}"
    if not _ID.match(nid):
        issues.append(IvrIssue(loc.file, loc.line(path), nid, "node id must be letters, digits, _ or -"))
    if not isinstance(raw, dict):
        issues.append(IvrIssue(loc.file, loc.line(path), nid, f"expected a mapping with a 'type', got {shown(raw)}"))
        return None
    found = yamlsrc.Issues(collect=True)
    r = Reader(raw, loc, path, issues=found)
    ntype = r.text("type", required=True, choices=NODE_TYPES)
    if ntype is None:
        issues += _issues(found.found, path, nid)
        return None
    nxt = _ref(r, "next")
    head = _Head(nid, ntype, (), _ref(r, "on_error"))
    head.prompts = _prompts(r, "prompts", required=ntype == "play")
    barge_in = r.flag("barge_in", ntype in _BARGE_IN)
    opts = PARSERS[ntype](r, head)
    r.finish()
    issues += _issues(found.found, path, nid)
    lines = {k[len(path) + 1:]: v for k, v in loc.lines.items() if k.startswith(path + ".")}
    return Node(nid, ntype, loc.file, loc.line(path), nxt, head.on_error, head.prompts, barge_in, opts, lines)


# ---------------------------------------------------------------- scripts

def parse_script(path: str | Path, issues: list[IvrIssue]) -> Script | None:
    """Parse one file; problems go to ``issues``. Returns None when nothing usable is left."""
    p = Path(path)
    try:
        data, loc = yamlsrc.load(p)
    except ConfigError as exc:
        issues.append(IvrIssue(exc.file or str(p), exc.line, None, exc.message))
        return None
    if not isinstance(data, dict):
        issues.append(IvrIssue(str(p), 1, None, "a script is a mapping with 'start' and 'nodes'"))
        return None
    found = yamlsrc.Issues(collect=True)
    r = Reader(data, loc, issues=found)
    name = r.text("name", p.stem)
    languages = [str(lang) for lang in r.items("languages", ["vi", "en"])]
    bad = [lang for lang in languages if lang not in LANGUAGES]
    if bad:
        r.error("languages", f"unknown language(s) {bad} (supported: {', '.join(LANGUAGES)})")
    languages = [lang for lang in languages if lang in LANGUAGES] or ["vi"]
    default_language = r.text("default_language", languages[0])
    if default_language not in languages:
        r.error("default_language", f"{default_language!r} is not in languages")
        default_language = languages[0]
    start = r.text("start", required=True)
    calendar = r.text("calendar")
    on_error = r.text("on_error")
    variables = r.mapping("variables")
    raw_nodes = r.mapping("nodes", required=True)
    r.text("description")
    r.finish()
    issues += _issues(found.found, "", None)
    nodes = {}
    for nid, raw in raw_nodes.items():
        node = _parse_node(nid, raw, loc, issues)
        if node:
            nodes[node.id] = node
    if start is None:
        return None
    return Script(name, str(p), start, tuple(languages), default_language, nodes, calendar, on_error,
                  variables, loc.line("start"))


def script_files(directory: str | Path) -> list[Path]:
    """The flows of a directory: every *.yaml except calendar.yaml."""
    d = Path(directory)
    return sorted(f for f in [*d.glob("*.yaml"), *d.glob("*.yml")] if f.stem != "calendar")


def parse_scripts(directory: str | Path, issues: list[IvrIssue]) -> ScriptSet:
    """Every script of a directory and its calendar.yaml; problems go to ``issues`` (nothing checked
    across nodes yet: that is :func:`callcenter.ivr.checker.check_loaded`)."""
    d = Path(directory)
    scripts: dict[str, Script] = {}
    files = script_files(d)
    if not d.is_dir():
        issues.append(IvrIssue(str(d), None, None, "not a directory"))
    elif not files:
        issues.append(IvrIssue(str(d), None, None, "no *.yaml scripts"))
    for f in files:
        s = parse_script(f, issues)
        if s is None:
            continue
        if s.name in scripts:
            issues.append(IvrIssue(s.file, 1, None, f"script name {s.name!r} is also used by {scripts[s.name].file}"))
            continue
        scripts[s.name] = s
    cal_file = d / "calendar.yaml"
    calendars = Calendars.empty()
    if cal_file.exists():
        try:
            calendars = Calendars.load(cal_file)
        except ConfigError as exc:
            issues.append(IvrIssue(exc.file or str(cal_file), exc.line, exc.key, exc.message))
    return ScriptSet(scripts, d, calendars)
