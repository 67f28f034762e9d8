"""The IVR script model and its YAML parser.

One file in ``ivr_scripts/`` is one script (a flow)::

    name: hotline               # defaults to the file name
    languages: [vi, en]         # every prompt must exist in each of these
    default_language: vi
    start: welcome
    calendar: hotline           # business hours from ivr_scripts/calendar.yaml
    on_error: sorry             # where a failing node goes when it has no on_error of its own
    variables: {force_hours: ""}
    nodes:
      welcome: {type: play, prompts: [welcome], next: menu}

Parsing never stops at the first problem: every issue is collected with file, line and
node so ``callcenter ivr check`` can list them all at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter import yamlsrc
from callcenter.exceptions import ConfigError
from callcenter.ivr import expr
from callcenter.ivr.saynumber import CURRENCIES, LANGUAGES, SAY_KINDS

NODE_TYPES = ("play", "say", "menu", "language", "collect", "branch", "set", "queue", "transfer", "record",
              "lookup", "survey", "event", "dnc", "goto", "hangup")
DTMF = set("0123456789*#")
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# "welcome", "queue/all_busy", or "en:lang/for_english" (always played from sounds/en/).
_PROMPT = re.compile(r"^(?:(?:vi|en):)?[a-z0-9_][a-z0-9_/-]*$")


@dataclass(frozen=True)
class IvrIssue:
    file: str
    line: int | None
    node: str | None
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where}: {self.node + ': ' if self.node else ''}{self.message}"


class IvrCheckError(ConfigError):
    """One or more scripts are invalid; ``issues`` lists every problem."""

    def __init__(self, issues: list[IvrIssue]) -> None:
        self.issues = issues
        super().__init__(f"{len(issues)} IVR error(s):\n" + "\n".join(str(i) for i in issues))

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class PromptItem:
    """One element of a prompt list: a recorded prompt, or a value said with say-number, or TTS text."""

    name: str | None = None
    say: str | None = None         # number/digits/currency/date/time/duration/text
    value: str | None = None       # a template: "{amount_due}"
    currency: str = "VND"
    # Vietnamese say-number wording (saynumber.SayOptions): "lẻ"/"linh" for a zero ten (105),
    # "tư" for 4 after mươi (24), "mùng" before days 1-10 of a date. Regions and brands differ.
    le: str = "le"
    tu: bool = False
    mung: bool = False


SAY_OPTION_FIELDS = ("le", "tu", "mung")
_LE = ("le", "linh")


def split_prompt(name: str, lang: str) -> tuple[str, str]:
    """("en:lang/for_english", "vi") -> ("en", "lang/for_english"): a fixed-language prompt."""
    if ":" in name:
        fixed, _, rest = name.partition(":")
        return fixed, rest
    return lang, name


@dataclass(frozen=True)
class MenuOption:
    next: str
    set: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Question:
    id: str
    prompts: tuple[PromptItem, ...]
    min: int = 1
    max: int = 5


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    file: str
    line: int | None
    next: str | None = None
    on_error: str | None = None
    prompts: tuple[PromptItem, ...] = ()
    barge_in: bool = False
    # type-specific settings, already validated (see _parse_node)
    opts: dict[str, Any] = field(default_factory=dict)
    # line of each field below the node ("options.1", "prompts[0]"), for precise messages
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, key: str | None) -> int | None:
        while key:
            if key in self.lines:
                return self.lines[key]
            cut = max(key.rfind("."), key.rfind("["))
            key = key[:cut] if cut > 0 else None
        return self.line

    def refs(self) -> list[tuple[str, str]]:
        """Every (field, node id) this node can continue to, in this script."""
        out: list[tuple[str, str]] = []
        for key in ("next", "on_error"):
            if getattr(self, key):
                out.append((key, getattr(self, key)))
        for key in ("default", "after_agent", "on_timeout", "on_full", "on_callback", "on_no_agents",
                    "on_failure", "on_invalid"):
            if self.opts.get(key):
                out.append((key, self.opts[key]))
        if self.type == "menu":
            out += [(f"options.{d}", o.next) for d, o in self.opts["options"].items()]
        if self.type == "branch":
            out += [(f"cases[{i}].next", nxt) for i, (_, nxt) in enumerate(self.opts["cases"])]
        return out

    def prompt_items(self) -> list[tuple[str, PromptItem]]:
        out = [("prompts", p) for p in self.prompts]
        for key in ("invalid_prompts", "timeout_prompts", "beep"):
            out += [(key, p) for p in self.opts.get(key, ())]
        for q in self.opts.get("questions", ()):
            out += [(f"questions.{q.id}", p) for p in q.prompts]
        return out


@dataclass(frozen=True)
class Script:
    name: str
    file: str
    start: str
    languages: tuple[str, ...]
    default_language: str
    nodes: dict[str, Node]
    calendar: str | None = None
    on_error: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


# ---------------------------------------------------------------- field readers

class _Reader:
    """Reads one node's fields, recording an issue for each bad one instead of raising."""

    def __init__(self, raw: dict[str, Any], loc: yamlsrc.Located, path: str, node: str | None,
                 issues: list[IvrIssue]) -> None:
        self.raw, self.loc, self.path, self.node, self.issues = raw, loc, path, node, issues
        self.used: set[str] = set()

    def issue(self, key: str | None, message: str) -> None:
        path = f"{self.path}.{key}" if key else self.path
        self.issues.append(IvrIssue(self.loc.file, self.loc.line(path), self.node,
                                    f"{key}: {message}" if key else message))

    def get(self, key: str, kinds: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.raw or self.raw[key] is None:
            if required:
                self.issue(None, f"missing required field {key!r}")
            return default
        value = self.raw[key]
        if kinds is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and kinds in (int, float)):
            names = kinds.__name__ if isinstance(kinds, type) else "/".join(k.__name__ for k in kinds)
            self.issue(key, f"must be {names}, not {type(value).__name__}")
            return default
        return value

    def seconds(self, key: str, default: float, lo: float = 0.1, hi: float = 86400) -> float:
        v = self.get(key, float, default)
        if not lo <= v <= hi:
            self.issue(key, f"must be between {lo} and {hi} seconds")
            return default
        return v

    def count(self, key: str, default: int, lo: int = 1, hi: int = 100) -> int:
        v = self.get(key, int, default)
        if not lo <= v <= hi:
            self.issue(key, f"must be between {lo} and {hi}")
            return default
        return v

    def ref(self, key: str, required: bool = False) -> str | None:
        v = self.get(key, str, None, required)
        if v is not None and not _ID.match(v):
            self.issue(key, f"not a node id: {v!r}")
            return None
        return v

    def prompts(self, key: str, required: bool = False) -> tuple[PromptItem, ...]:
        v = self.get(key, (list, str), None, required)
        if v is None:
            return ()
        items = [v] if isinstance(v, str) else v
        out = []
        for i, item in enumerate(items):
            p = _prompt_item(item, self, f"{key}[{i}]")
            if p:
                out.append(p)
        return tuple(out)

    def finish(self) -> None:
        for key in self.raw:
            if key not in self.used:
                self.issue(str(key), "unknown field")


def _prompt_item(item: Any, r: _Reader, key: str) -> PromptItem | None:
    if isinstance(item, str):
        if not _PROMPT.match(item):
            r.issue(key, f"bad prompt name {item!r} (lower-case letters, digits, _ - /, optional lang: prefix; "
                         "no extension)")
            return None
        return PromptItem(name=item)
    if isinstance(item, dict) and "say" in item:
        kind, value = item.get("say"), item.get("value")
        cur = str(item.get("currency", "VND")).upper()
        extra = set(item) - {"say", "value", "currency", *SAY_OPTION_FIELDS}
        if kind not in (*SAY_KINDS, "text"):
            r.issue(key, f"unknown say kind {kind!r} (one of {', '.join((*SAY_KINDS, 'text'))})")
        elif value is None:
            r.issue(key, "say needs a value")
        elif cur not in CURRENCIES:
            r.issue(key, f"unknown currency {cur!r}")
        elif extra:
            r.issue(key, f"unknown field(s) {sorted(extra)}")
        else:
            opts = _say_options(item, kind, r, key)
            if opts is not None:
                return PromptItem(say=kind, value=str(value), currency=cur, **opts)
        return None
    r.issue(key, "a prompt is a name or {say: kind, value: ...}")
    return None


def _say_options(item: dict[str, Any], kind: str, r: _Reader, key: str) -> dict[str, Any] | None:
    """``le: linh``, ``tu: true``, ``mung: true`` on a say item; None (and an issue) when wrong."""
    out: dict[str, Any] = {}
    ok = True
    if "le" in item:
        if item["le"] not in _LE:
            r.issue(key, f"le: one of {', '.join(_LE)} (lẻ or linh for the zero ten in 105), not {item['le']!r}")
            ok = False
        else:
            out["le"] = item["le"]
    for flag in ("tu", "mung"):
        if flag in item:
            if not isinstance(item[flag], bool):
                r.issue(key, f"{flag}: must be true or false, not {item[flag]!r}")
                ok = False
            else:
                out[flag] = item[flag]
    words = [f for f in SAY_OPTION_FIELDS if f in item]
    if words and kind in ("digits", "text"):
        r.issue(key, f"{', '.join(words)}: no effect when saying {kind} (numbers, currency, dates, times)")
        ok = False
    elif "mung" in item and kind != "date":
        r.issue(key, "mung: only for say: date (mùng before days 1-10)")
        ok = False
    return out if ok else None


def _digit_key(d: Any) -> str:
    return str(d)


# ---------------------------------------------------------------- nodes

def _parse_node(nid: str, raw: Any, loc: yamlsrc.Located, issues: list[IvrIssue]) -> Node | None:
    path = f"nodes.{nid}"
    if not _ID.match(str(nid)):
        issues.append(IvrIssue(loc.file, loc.line(path), str(nid), "node id must be letters, digits, _ or -"))
    if not isinstance(raw, dict):
        issues.append(IvrIssue(loc.file, loc.line(path), nid, "a node is a mapping with a 'type'"))
        return None
    r = _Reader(raw, loc, path, nid, issues)
    ntype = r.get("type", str, None, required=True)
    if ntype is None:
        return None
    if ntype not in NODE_TYPES:
        r.issue("type", f"unknown node type {ntype!r} (one of {', '.join(NODE_TYPES)})")
        return None
    nxt = r.ref("next")
    on_error = r.ref("on_error")
    prompts = r.prompts("prompts", required=ntype == "play")
    barge_in = r.get("barge_in", bool, ntype in ("menu", "language", "collect", "survey"))
    o: dict[str, Any] = {}

    if ntype == "say":
        kind = r.get("say", str, None, required=True)
        value = r.get("value", (str, int, float), None, required=True)
        currency = r.get("currency", str, "VND")
        wording = {f: r.get(f, (str, bool), None) for f in SAY_OPTION_FIELDS}
        if kind is not None and value is not None:
            item = {"say": kind, "value": value, "currency": currency}
            item.update({f: v for f, v in wording.items() if v is not None})
            p = _prompt_item(item, r, "say")
            prompts = prompts + ((p,) if p else ())
        prompts = prompts + r.prompts("after")
    elif ntype in ("menu", "language"):
        raw_opts = r.get("options", dict, {}, required=True)
        opts: dict[str, Any] = {}
        for d, target in raw_opts.items():
            key = _digit_key(d)
            if len(key) != 1 or key not in DTMF:
                r.issue(f"options.{d}", f"bad digit {key!r}: one of 0-9, * or #")
                continue
            if ntype == "language":
                if target not in LANGUAGES:
                    r.issue(f"options.{d}", f"unknown language {target!r} (one of {', '.join(LANGUAGES)})")
                    continue
                opts[key] = target
            elif isinstance(target, str) and _ID.match(target):
                opts[key] = MenuOption(target)
            elif isinstance(target, dict) and isinstance(target.get("next"), str):
                extra = set(target) - {"next", "set"}
                if extra or not isinstance(target.get("set", {}), dict):
                    r.issue(f"options.{d}", "an option is a node id or {next: node, set: {var: value}}")
                    continue
                opts[key] = MenuOption(target["next"], dict(target.get("set", {})))
            else:
                r.issue(f"options.{d}", "an option is a node id or {next: node, set: {var: value}}")
        o["options"] = opts
        o["timeout"] = r.seconds("timeout", 5.0)
        o["attempts"] = r.count("attempts", 3)
        o["invalid_prompts"] = r.prompts("invalid_prompts")
        o["timeout_prompts"] = r.prompts("timeout_prompts")
        if ntype == "menu":
            o["default"] = r.ref("default")
        else:
            lang = r.get("default", str, None)
            if lang is not None and lang not in LANGUAGES:
                r.issue("default", f"unknown language {lang!r}")
                lang = None
            o["default_language"] = lang
            # a language already known (campaign column, --lang, the worker's DID map) is not asked again
            o["ask_always"] = r.get("ask_always", bool, False)
    elif ntype == "collect":
        o["variable"] = r.get("variable", str, None, required=True)
        o["max_digits"] = r.count("max_digits", 1, 1, 64)
        o["min_digits"] = r.count("min_digits", 1, 1, 64)
        term = r.get("terminator", (str, int), "#")
        term = str(term) if term != "" else None
        if term is not None and (len(term) != 1 or term not in DTMF):
            r.issue("terminator", f"bad digit {term!r}: one of 0-9, * or # (or '' for none)")
            term = "#"
        o["terminator"] = term
        o["timeout"] = r.seconds("timeout", 5.0)
        o["inter_digit_timeout"] = r.seconds("inter_digit_timeout", 3.0)
        o["attempts"] = r.count("attempts", 3)
        pattern = r.get("pattern", str, None)
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                r.issue("pattern", f"bad regular expression: {exc}")
                pattern = None
        o["pattern"] = pattern
        o["validate"] = r.get("validate", str, None)   # "date": a real calendar date DDMMYYYY
        if o["validate"] not in (None, "date", "future_date"):
            r.issue("validate", "one of date, future_date")
        o["invalid_prompts"] = r.prompts("invalid_prompts")
        o["timeout_prompts"] = r.prompts("timeout_prompts")
        o["on_invalid"] = r.ref("on_invalid")
        # a PIN, a card number: the flow may use the digits, no record, event or log keeps them
        o["sensitive"] = r.get("sensitive", bool, False)
        if o["min_digits"] > o["max_digits"]:
            r.issue("min_digits", "is more than max_digits")
    elif ntype == "branch":
        cases = []
        for i, case in enumerate(r.get("cases", list, [], required=True)):
            key = f"cases[{i}]"
            if not isinstance(case, dict) or set(case) != {"when", "next"}:
                r.issue(key, "a case is {when: condition, next: node}")
                continue
            try:
                cond = expr.parse(str(case["when"]))
            except expr.ExprError as exc:
                r.issue(f"{key}.when", f"bad condition: {exc}")
                continue
            if not isinstance(case["next"], str) or not _ID.match(case["next"]):
                r.issue(f"{key}.next", "not a node id")
                continue
            cases.append((cond, case["next"]))
        o["cases"] = tuple(cases)
        o["default"] = r.ref("default", required=True)
    elif ntype == "set":
        o["variables"] = dict(r.get("variables", dict, {}))
        o["queue"] = r.get("queue", str, None)
        o["skills"] = _skills(r)
        o["priority"] = r.get("priority", int, None)
        lang = r.get("language", str, None)
        if lang is not None and lang not in LANGUAGES:
            r.issue("language", f"unknown language {lang!r}")
            lang = None
        o["language"] = lang
    elif ntype == "queue":
        o["queue"] = r.get("queue", str, None)
        o["skills"] = _skills(r)
        o["priority"] = r.get("priority", int, None)
        o["max_wait"] = r.seconds("max_wait", 300.0, 1, 7200)
        o["callback_offer"] = r.get("callback_offer", bool, False)
        o["callback_after"] = r.seconds("callback_after", 60.0, 0, 7200)
        announce = r.get("announce", dict, {})
        unknown = set(announce) - {"position", "wait_time", "every"}
        if unknown:
            r.issue("announce", f"unknown field(s) {sorted(unknown)} (position, wait_time, every)")
        o["announce"] = {"position": bool(announce.get("position", True)),
                         "wait_time": bool(announce.get("wait_time", True)),
                         "every": float(announce.get("every", 45))}
        o["music"] = r.get("music", str, "moh")
        for key in ("after_agent", "on_timeout", "on_full", "on_callback", "on_no_agents", "on_failure"):
            o[key] = r.ref(key)
    elif ntype == "transfer":
        o["uri"] = r.get("uri", str, None, required=True)
        if o["uri"] and not re.match(r"^(sips?:|tel:|\{)", o["uri"]):
            r.issue("uri", "must be a sip:, sips: or tel: URI")
        # where a templated uri may lead (fnmatch patterns); a fixed uri is its own allow-list
        o["allow"] = tuple(str(p) for p in r.get("allow", list, []))
        for i, pat in enumerate(o["allow"]):
            if not re.match(r"^(sips?|tel):", pat):
                r.issue(f"allow[{i}]", "must be a sip:, sips: or tel: URI pattern")
    elif ntype == "record":
        o["variable"] = r.get("variable", str, "recording")
        o["max_seconds"] = r.seconds("max_seconds", 120.0, 1, 3600)
        o["silence_seconds"] = r.get("silence_seconds", float, 5.0)
        o["beep"] = r.prompts("beep")
    elif ntype == "lookup":
        method = r.get("method", str, "GET").upper()
        if method not in ("GET", "POST"):
            r.issue("method", "GET or POST")
        o["method"] = method
        o["url"] = r.get("url", str, None, required=True)
        if o["url"] and not re.match(r"^(https?://|\$\{)", o["url"]):
            r.issue("url", "must start with http:// or https:// (or ${ENV_VAR})")
        o["params"] = dict(r.get("params", dict, {}))
        o["headers"] = dict(r.get("headers", dict, {}))
        o["timeout"] = r.seconds("timeout", 2.0, 0.05, 30)
        result = r.get("result", dict, {})
        o["result"] = {str(k): str(v) for k, v in result.items()}
        if on_error is None:
            r.issue(None, "a lookup needs on_error: the path the call takes when the server is slow or wrong")
    elif ntype == "survey":
        qs = []
        for i, q in enumerate(r.get("questions", list, [], required=True)):
            key = f"questions[{i}]"
            if not isinstance(q, dict) or not isinstance(q.get("id"), str):
                r.issue(key, "a question is {id: name, prompts: [...], min: 1, max: 5}")
                continue
            sub = _Reader(q, loc, f"{path}.{key}", nid, issues)
            sub.used.add("id")
            qp = sub.prompts("prompts", required=True)
            lo, hi = sub.count("min", 1, 0, 9), sub.count("max", 5, 0, 9)
            if lo > hi:
                sub.issue("min", "is more than max")
            sub.finish()
            qs.append(Question(q["id"], qp, lo, hi))
        o["questions"] = tuple(qs)
        o["attempts"] = r.count("attempts", 2)
        o["timeout"] = r.seconds("timeout", 6.0)
        o["invalid_prompts"] = r.prompts("invalid_prompts")
    elif ntype == "event":
        o["name"] = r.get("name", str, None, required=True)
        o["data"] = dict(r.get("data", dict, {}))
    elif ntype == "dnc":
        o["scope"] = r.get("scope", str, "global")
        o["number"] = r.get("number", str, "{caller}")
    elif ntype == "goto":
        o["script"] = r.get("script", str, None, required=True)
        o["node"] = r.ref("node")
    r.finish()
    lines = {k[len(path) + 1:]: v for k, v in loc.lines.items() if k.startswith(path + ".")}
    return Node(nid, ntype, loc.file, loc.line(path), nxt, on_error, prompts, barge_in, o, lines)


def _skills(r: _Reader) -> dict[str, int] | None:
    raw = r.get("skills", (dict, list), None)
    if raw is None:
        return None
    if isinstance(raw, list):
        raw = {s: 1 for s in raw}
    out = {}
    for k, v in raw.items():
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 100:
            r.issue(f"skills.{k}", "minimum level must be an integer 0-100")
            continue
        out[str(k)] = v
    return out


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
    r = _Reader(data, loc, "", None, issues)
    name = r.get("name", str, p.stem)
    languages = r.get("languages", list, ["vi", "en"])
    bad = [lang for lang in languages if lang not in LANGUAGES]
    if bad:
        r.issue("languages", f"unknown language(s) {bad} (supported: {', '.join(LANGUAGES)})")
    languages = [lang for lang in languages if lang in LANGUAGES] or ["vi"]
    default_language = r.get("default_language", str, languages[0])
    if default_language not in languages:
        r.issue("default_language", f"{default_language!r} is not in languages")
        default_language = languages[0]
    start = r.get("start", str, None, required=True)
    calendar = r.get("calendar", str, None)
    on_error = r.get("on_error", str, None)
    variables = r.get("variables", dict, {})
    raw_nodes = r.get("nodes", dict, {}, required=True)
    r.get("description", str, None)
    r.finish()
    nodes = {}
    for nid, raw in raw_nodes.items():
        node = _parse_node(str(nid), raw, loc, issues)
        if node:
            nodes[node.id] = node
    if start is None:
        return None
    return Script(name, str(p), start, tuple(languages), default_language, nodes, calendar, on_error,
                  dict(variables), loc.line("start"))


def script_files(directory: str | Path) -> list[Path]:
    """The flows of a directory: every *.yaml except calendar.yaml."""
    d = Path(directory)
    return sorted(f for f in [*d.glob("*.yaml"), *d.glob("*.yml")] if f.stem != "calendar")


@dataclass
class ScriptSet:
    """Every script of a directory, by name, plus the business-hours calendar."""

    scripts: dict[str, Script]
    directory: Path
    calendar: Any = None   # callcenter.ivr.calendar.Calendars

    @classmethod
    def load(cls, directory: str | Path, sounds_dir: str | Path | None = None) -> ScriptSet:
        """Load and check every script; raises IvrCheckError listing every error found."""
        from callcenter.ivr.checker import check_loaded

        issues: list[IvrIssue] = []
        sset = cls.parse(directory, issues)
        issues += check_loaded(sset, sounds_dir)
        errors = [i for i in issues if i.severity == "error"]
        if errors:
            raise IvrCheckError(errors)
        return sset

    @classmethod
    def parse(cls, directory: str | Path, issues: list[IvrIssue]) -> ScriptSet:
        from callcenter.ivr.calendar import Calendars

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
                issues.append(IvrIssue(s.file, 1, None,
                                       f"script name {s.name!r} is also used by {scripts[s.name].file}"))
                continue
            scripts[s.name] = s
        cal_file = d / "calendar.yaml"
        calendars = Calendars.empty()
        if cal_file.exists():
            try:
                calendars = Calendars.load(cal_file)
            except ConfigError as exc:
                issues.append(IvrIssue(exc.file or str(cal_file), exc.line, exc.key, exc.message))
        return cls(scripts, d, calendars)

    def node(self, ref: str) -> Node:
        """A node by its path name "script.node"."""
        script, _, nid = ref.partition(".")
        return self.scripts[script].nodes[nid]
