"""The IVR script model: scripts, nodes and the options of each node type.

The parser (:mod:`callcenter.ivr.script`) builds these from YAML; the checker and the runner read them.
Every node has the common fields (``next``, ``on_error``, ``prompts``, ``barge_in``); what a node type
adds is one frozen options object (:class:`MenuOptions` for a ``menu``, ...), read as attributes.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from callcenter.exceptions import ConfigError
from callcenter.ivr.calendar import Calendars
from callcenter.ivr.expr import Expr


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


Prompts = tuple[PromptItem, ...]
# Where a path of the flow leads: a node id (of the same script; a goto's, of its script), or None for
# the node type's default (the next node, or the end of the call). The checker resolves every one.
NodeRef = str | None


def split_prompt(name: str, lang: str) -> tuple[str, str]:
    """("en:lang/for_english", "vi") -> ("en", "lang/for_english"): a fixed-language prompt."""
    if ":" in name:
        fixed, _, rest = name.partition(":")
        return fixed, rest
    return lang, name


@dataclass(frozen=True)
class MenuOption:
    next: str
    set: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Question:
    id: str
    prompts: Prompts
    min: int = 1
    max: int = 5


# ---------------------------------------------------------------- options, one class per node type

@dataclass(frozen=True)
class Options:
    """What a node type adds to the common fields. Play, say and hangup nodes add nothing."""

    def refs(self) -> list[tuple[str, NodeRef]]:
        """(field, node id or None) of every field naming a node of the same script."""
        return []

    def prompt_lists(self) -> list[tuple[str, Prompts]]:
        """(field, prompts) of every prompt list besides the node's ``prompts``."""
        return []


@dataclass(frozen=True)
class MenuOptions(Options):
    options: dict[str, MenuOption]           # digit -> where it leads
    timeout: float = 5.0
    attempts: int = 3
    invalid_prompts: Prompts = ()
    timeout_prompts: Prompts = ()
    default: NodeRef = None                  # where the call goes when the attempts run out

    def refs(self) -> list[tuple[str, NodeRef]]:
        return [("default", self.default), *((f"options.{d}", o.next) for d, o in self.options.items())]

    def prompt_lists(self) -> list[tuple[str, Prompts]]:
        return [("invalid_prompts", self.invalid_prompts), ("timeout_prompts", self.timeout_prompts)]


@dataclass(frozen=True)
class LanguageOptions(Options):
    options: dict[str, str]                  # digit -> language
    timeout: float = 5.0
    attempts: int = 3
    invalid_prompts: Prompts = ()
    timeout_prompts: Prompts = ()
    default_language: str | None = None
    ask_always: bool = False                 # a language already known (campaign column, --lang) is not asked

    def prompt_lists(self) -> list[tuple[str, Prompts]]:
        return [("invalid_prompts", self.invalid_prompts), ("timeout_prompts", self.timeout_prompts)]


@dataclass(frozen=True)
class CollectOptions(Options):
    variable: str                            # "" only in a script that failed its check
    max_digits: int = 1
    min_digits: int = 1
    terminator: str | None = "#"
    timeout: float = 5.0
    inter_digit_timeout: float = 3.0
    attempts: int = 3
    pattern: str | None = None
    validate: str | None = None              # "date": a real calendar date DDMMYYYY; "future_date"
    invalid_prompts: Prompts = ()
    timeout_prompts: Prompts = ()
    on_invalid: NodeRef = None
    sensitive: bool = False                  # a PIN, a card number: no record, event or log keeps the digits

    def refs(self) -> list[tuple[str, NodeRef]]:
        return [("on_invalid", self.on_invalid)]

    def prompt_lists(self) -> list[tuple[str, Prompts]]:
        return [("invalid_prompts", self.invalid_prompts), ("timeout_prompts", self.timeout_prompts)]


@dataclass(frozen=True)
class BranchOptions(Options):
    cases: tuple[tuple[Expr, str], ...]      # (condition, node), the first true one wins
    default: NodeRef = None

    def refs(self) -> list[tuple[str, NodeRef]]:
        return [("default", self.default), *((f"cases[{i}].next", nxt) for i, (_, nxt) in enumerate(self.cases))]


@dataclass(frozen=True)
class SetOptions(Options):
    variables: dict[str, object] = field(default_factory=dict)
    queue: str | None = None
    skills: dict[str, int] | None = None
    priority: int | None = None
    language: str | None = None


@dataclass(frozen=True)
class QueueAnnounce:
    position: bool = True
    wait_time: bool = True
    every: float = 45.0


@dataclass(frozen=True)
class QueueOptions(Options):
    queue: str | None = None
    skills: dict[str, int] | None = None
    priority: int | None = None
    max_wait: float = 300.0
    callback_offer: bool = False
    callback_after: float = 60.0
    announce: QueueAnnounce = field(default_factory=QueueAnnounce)
    music: str = "moh"
    after_agent: NodeRef = None
    on_timeout: NodeRef = None
    on_full: NodeRef = None
    on_callback: NodeRef = None
    on_no_agents: NodeRef = None
    on_failure: NodeRef = None

    def refs(self) -> list[tuple[str, NodeRef]]:
        return [("after_agent", self.after_agent), ("on_timeout", self.on_timeout), ("on_full", self.on_full),
                ("on_callback", self.on_callback), ("on_no_agents", self.on_no_agents),
                ("on_failure", self.on_failure)]


@dataclass(frozen=True)
class TransferOptions(Options):
    uri: str
    allow: tuple[str, ...] = ()              # where a templated uri may lead; a fixed uri is its own allow-list


@dataclass(frozen=True)
class RecordOptions(Options):
    variable: str = "recording"
    max_seconds: float = 120.0
    silence_seconds: float = 5.0
    beep: Prompts = ()

    def prompt_lists(self) -> list[tuple[str, Prompts]]:
        return [("beep", self.beep)]


@dataclass(frozen=True)
class LookupOptions(Options):
    url: str
    method: str = "GET"
    params: dict[str, object] = field(default_factory=dict)
    headers: dict[str, object] = field(default_factory=dict)
    timeout: float = 2.0
    result: dict[str, str] = field(default_factory=dict)    # variable -> path in the JSON answer


@dataclass(frozen=True)
class SurveyOptions(Options):
    questions: tuple[Question, ...]
    attempts: int = 2
    timeout: float = 6.0
    invalid_prompts: Prompts = ()

    def prompt_lists(self) -> list[tuple[str, Prompts]]:
        return [("invalid_prompts", self.invalid_prompts), *((f"questions.{q.id}", q.prompts) for q in self.questions)]


@dataclass(frozen=True)
class EventOptions(Options):
    name: str
    data: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class DncOptions(Options):
    scope: str = "global"
    number: str = "{caller}"


@dataclass(frozen=True)
class GotoOptions(Options):
    script: str
    node: NodeRef = None


OptionsT = TypeVar("OptionsT", bound=Options)


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    file: str
    line: int | None
    next: NodeRef = None
    on_error: NodeRef = None
    prompts: Prompts = ()
    barge_in: bool = False
    opts: Options = field(default_factory=Options)
    # line of each field below the node ("options.1", "prompts[0]"), for precise messages
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def options(self, kind: builtins.type[OptionsT]) -> OptionsT:   # (the field "type" shadows the builtin)
        """The node's options as ``kind`` (the runner's handler for a type asks for that type's class)."""
        if not isinstance(self.opts, kind):
            raise TypeError(f"node {self.id!r} ({self.type}) has {type(self.opts).__name__}, not {kind.__name__}")
        return self.opts

    def line_of(self, key: str | None) -> int | None:
        while key:
            if key in self.lines:
                return self.lines[key]
            cut = max(key.rfind("."), key.rfind("["))
            key = key[:cut] if cut > 0 else None
        return self.line

    def refs(self) -> list[tuple[str, str]]:
        """Every (field, node id) this node can continue to, in this script."""
        pairs = [("next", self.next), ("on_error", self.on_error), *self.opts.refs()]
        return [(key, target) for key, target in pairs if target]

    def prompt_items(self) -> list[tuple[str, PromptItem]]:
        return [(key, p) for key, items in [("prompts", self.prompts), *self.opts.prompt_lists()] for p in items]


@dataclass(frozen=True)
class Script:
    name: str
    file: str
    start: str
    languages: tuple[str, ...]
    default_language: str
    nodes: dict[str, Node]
    calendar: str | None = None
    on_error: NodeRef = None
    variables: dict[str, object] = field(default_factory=dict)
    line: int | None = None


@dataclass
class ScriptSet:
    """Every script of a directory, by name, plus the business-hours calendar. Built by
    :func:`callcenter.ivr.script.parse_scripts`; :func:`callcenter.ivr.checker.load_scripts` also checks it."""

    scripts: dict[str, Script]
    directory: Path
    calendar: Calendars = field(default_factory=Calendars.empty)

    def node(self, ref: str) -> Node:
        """A node by its path name "script.node"."""
        script, _, nid = ref.partition(".")
        return self.scripts[script].nodes[nid]
