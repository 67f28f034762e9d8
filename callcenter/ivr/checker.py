"""``callcenter ivr check``: everything that can be known about a flow before a call runs it.

Error classes: unknown node types and fields, dangling references (next/default/options,
goto to another script), unreachable nodes, loops the caller can never leave, bad DTMF
digits, bad conditions/patterns, and prompt files missing in any language a script uses.
Each issue names file, line and node.
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path

from callcenter.ivr import announce, model
from callcenter.ivr.model import IvrCheckError, IvrIssue, Node, Script, ScriptSet, split_prompt
from callcenter.ivr.saynumber import prompt_names
from callcenter.ivr.script import parse_scripts

# Variables every run has without a flow setting them (runner.run and runner._Env).
BUILTIN_VARIABLES = frozenset({"caller", "called", "call_id", "language", "business_hours", "holiday", "hour",
                               "minute", "weekday", "today", "caller_verified"})
_TEMPLATE_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Node types after which a call can end: the caller hangs up, is transferred or queued to
# an agent, or continues in another script.
_ENDING = {"hangup", "transfer", "goto", "queue"}


def check(directory: str | Path, sounds_dir: str | Path | None = None) -> list[IvrIssue]:
    """Every problem in the scripts of ``directory`` (errors and warnings), sorted by file and line."""
    issues: list[IvrIssue] = []
    sset = parse_scripts(directory, issues)
    issues += check_loaded(sset, sounds_dir)
    return sorted(issues, key=lambda i: (i.file, i.line or 0, i.message))


def load_scripts(directory: str | Path, sounds_dir: str | Path | None = None) -> ScriptSet:
    """Load and check every script of ``directory``; raises IvrCheckError listing every error found."""
    issues: list[IvrIssue] = []
    sset = parse_scripts(directory, issues)
    issues += check_loaded(sset, sounds_dir)
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise IvrCheckError(errors)
    return sset


def check_loaded(sset: ScriptSet, sounds_dir: str | Path | None = None) -> list[IvrIssue]:
    issues: list[IvrIssue] = []
    entries: dict[str, set[str]] = {name: {s.start} for name, s in sset.scripts.items()}
    for script in sset.scripts.values():
        if script.on_error:
            entries[script.name].add(script.on_error)
        for node in script.nodes.values():
            if isinstance(goto := node.opts, model.GotoOptions):
                target = sset.scripts.get(goto.script)
                if target is None:
                    issues.append(_issue(node, f"goto: no script named {goto.script!r}", "script"))
                elif goto.node and goto.node not in target.nodes:
                    issues.append(_issue(node, f"goto: script {target.name!r} has no node {goto.node!r}", "node"))
                else:
                    entries[target.name].add(goto.node or target.start)
    # a flow entered by goto sees the variables of the flows that jump to it
    inherited: dict[str, set[str]] = {name: set() for name in sset.scripts}
    for script in sset.scripts.values():
        for node in script.nodes.values():
            if isinstance(node.opts, model.GotoOptions) and node.opts.script in inherited:
                inherited[node.opts.script] |= variables_set(script)
    for script in sset.scripts.values():
        issues += _check_script(script, sset, entries[script.name])
        issues += _check_variables(script, inherited[script.name])
        if sounds_dir is not None:
            issues += _check_prompts(script, Path(sounds_dir))
    return issues


def _issue(node: Node, message: str, key: str | None = None, severity: str = "error") -> IvrIssue:
    return IvrIssue(node.file, node.line_of(key), node.id, message, severity)


def _check_script(script: Script, sset: ScriptSet, entries: set[str]) -> list[IvrIssue]:
    out: list[IvrIssue] = []
    nodes = script.nodes
    if script.start not in nodes:
        out.append(IvrIssue(script.file, script.line, None, f"start: no node named {script.start!r}"))
    if script.on_error and script.on_error not in nodes:
        out.append(IvrIssue(script.file, None, None, f"on_error: no node named {script.on_error!r}"))
    if script.calendar and sset.calendar.get(script.calendar) is None:
        out.append(IvrIssue(script.file, None, None,
                            f"calendar: no calendar {script.calendar!r} in calendar.yaml"))
    edges: dict[str, list[str]] = {}
    dangling: set[str] = set()
    for node in nodes.values():
        edges[node.id] = []
        for key, target in node.refs():
            if target not in nodes:
                out.append(_issue(node, f"{key}: no node named {target!r}", key))
                dangling.add(node.id)   # already an error: do not also report it as a trap
            else:
                edges[node.id].append(target)
        o = node.opts
        if isinstance(o, model.BranchOptions) and any("business_hours" in c.names or "holiday" in c.names
                                                      for c, _ in o.cases) and not script.calendar:
            out.append(_issue(node, "uses business_hours/holiday but the script names no calendar"))
        if isinstance(o, model.MenuOptions) and not o.options:
            out.append(_issue(node, "a menu needs at least one option"))
        if isinstance(o, model.TransferOptions) and "{" in o.uri and not o.allow:
            out.append(_issue(node, "uri: a templated transfer is refused at run time unless the target matches "
                                    "the node's allow: patterns or dialing.transfer_allow", "uri", severity="warning"))
        if isinstance(o, model.LanguageOptions):
            for lang in o.options.values():
                if lang not in script.languages:
                    out.append(_issue(node, f"offers language {lang!r} that is not in the script's languages"))

    # reachability from the start (and from goto targets / the script's on_error)
    seen: set[str] = set()
    todo = deque(e for e in entries if e in nodes)
    while todo:
        n = todo.popleft()
        if n in seen:
            continue
        seen.add(n)
        todo.extend(edges.get(n, []))
    for node in nodes.values():
        if node.id not in seen:
            out.append(_issue(node, "unreachable: no path from the start leads here"))

    # loops without an exit: reachable nodes from which no path can end the call
    can_end = {n.id for n in nodes.values() if _may_end(n, edges)} | dangling
    reverse: dict[str, list[str]] = {n: [] for n in nodes}
    for a, targets in edges.items():
        for b in targets:
            reverse[b].append(a)
    todo = deque(can_end)
    while todo:
        n = todo.popleft()
        for prev in reverse[n]:
            if prev not in can_end:
                can_end.add(prev)
                todo.append(prev)
    trapped = [n for n in nodes.values() if n.id in seen and n.id not in can_end]
    reported: set[str] = set()
    for node in trapped:
        if node.id in reported:
            continue
        group = _component(node.id, edges, {t.id for t in trapped})
        reported |= group
        out.append(_issue(node, "loop without an exit: the call can never end from here "
                                f"(nodes {', '.join(sorted(group))})"))
    return out


def variables_set(script: Script) -> set[str]:
    """Every variable the script declares or one of its nodes sets."""
    out = set(script.variables)
    for node in script.nodes.values():
        o = node.opts
        if isinstance(o, model.SetOptions):
            out |= set(o.variables)
        elif isinstance(o, model.MenuOptions):
            for option in o.options.values():
                out |= set(option.set)
        elif isinstance(o, model.CollectOptions) and o.variable:
            out.add(o.variable)
            if o.validate:
                out.add(f"{o.variable}_raw")     # the digits as typed; the variable holds the ISO date
        elif isinstance(o, model.RecordOptions):
            out |= {o.variable, f"{o.variable}_seconds"}
        elif isinstance(o, model.LookupOptions):
            out |= set(o.result)
        elif isinstance(o, model.SurveyOptions):
            out |= {f"survey_{q.id}" for q in o.questions}
    return out


def _templates(node: Node) -> list[tuple[str, object]]:
    """(field, template) pairs of a node whose ``{var}`` names are filled in at run time."""
    out: list[tuple[str, object]] = []
    index: dict[str, int] = {}
    for key, p in node.prompt_items():
        i = index[key] = index.get(key, -1) + 1
        if p.value is not None:
            out.append((f"{key}[{i}]", p.value))
    o = node.opts
    maps: dict[str, dict[str, object]] = {}
    if isinstance(o, model.SetOptions):
        maps = {"variables": o.variables}
    elif isinstance(o, model.LookupOptions):
        maps = {"params": o.params, "headers": o.headers}
    elif isinstance(o, model.EventOptions):
        maps = {"data": o.data}
    for key, values in maps.items():
        out += [(f"{key}.{k}", v) for k, v in values.items()]
    if isinstance(o, model.TransferOptions):
        out.append(("uri", o.uri))
    if isinstance(o, model.DncOptions):
        out += [("number", o.number), ("scope", o.scope)]
    if isinstance(o, model.MenuOptions):
        for digit, option in o.options.items():
            out += [(f"options.{digit}", v) for v in option.set.values()]
    return out


def _check_variables(script: Script, inherited: set[str]) -> list[IvrIssue]:
    """Warnings for names no one sets: a typo (``{amount_du}``) fails only on a live call."""
    known = variables_set(script) | inherited | BUILTIN_VARIABLES
    out: list[IvrIssue] = []
    for node in script.nodes.values():
        used: list[tuple[str, str]] = []
        for key, template in _templates(node):
            if isinstance(template, str):
                used += [(key, name) for name in _TEMPLATE_VAR.findall(template)]
        if isinstance(node.opts, model.BranchOptions):
            used += [(f"cases[{i}].when", name) for i, (cond, _) in enumerate(node.opts.cases)
                     for name in sorted(cond.names)]
        seen: set[str] = set()
        for key, name in used:
            if name in known or name in seen:
                continue
            seen.add(name)
            out.append(_issue(node, f"{key}: variable {name!r} is never set: not declared under variables:, "
                                    "not set by a node or a lookup, not a built-in (declare campaign columns "
                                    "under variables: with a default)", key, severity="warning"))
    return out


def _may_end(node: Node, edges: dict[str, list[str]]) -> bool:
    if node.type in _ENDING or not edges[node.id]:
        return True
    # a menu/collect whose retries run out without a default hangs up politely
    if isinstance(node.opts, model.MenuOptions) and not node.opts.default:
        return True
    if isinstance(node.opts, model.CollectOptions) and not node.opts.on_invalid and not node.on_error:
        return True
    return node.next is None and node.type in ("play", "say", "set", "record", "event", "dnc", "survey")


def _component(start: str, edges: dict[str, list[str]], allowed: set[str]) -> set[str]:
    group, todo = set(), [start]
    while todo:
        n = todo.pop()
        if n in group or n not in allowed:
            continue
        group.add(n)
        todo.extend(edges.get(n, []))
    return group


def _check_prompts(script: Script, sounds: Path) -> list[IvrIssue]:
    out: list[IvrIssue] = []
    uses_say = uses_queue = False
    for lang in script.languages:
        for node in script.nodes.values():
            missing: dict[str, list[str]] = {}
            for key, item in node.prompt_items():
                if item.name:
                    plang, name = split_prompt(item.name, lang)
                    if not (sounds / plang / f"{name}.wav").is_file():
                        missing.setdefault(key, []).append(item.name if plang == lang else f"{plang}/{name}")
                uses_say = uses_say or (item.say is not None and item.say != "text")
            if isinstance(node.opts, model.QueueOptions):
                uses_queue = True
                music = sounds / f"{node.opts.music}.wav"
                if not music.is_file():
                    out.append(_issue(node, f"music file {music} is missing", "music"))
            for key, names in missing.items():
                out.append(_issue(node, f"{key}: prompt file(s) missing in {sounds / lang}: "
                                        f"{', '.join(sorted(set(names)))} (run scripts/make_prompts.py)", key))
        needed = set(announce.SYSTEM_PROMPTS)
        if uses_say:
            needed |= prompt_names(lang)
        if uses_queue:
            needed |= set(announce.QUEUE_PROMPTS) | prompt_names(lang)
        absent = sorted(n for n in needed if not (sounds / lang / f"{n}.wav").is_file())
        if absent:
            shown = ", ".join(absent[:8]) + (f" and {len(absent) - 8} more" if len(absent) > 8 else "")
            out.append(IvrIssue(script.file, script.line, None,
                                f"built-in prompt file(s) missing in {sounds / lang}: {shown} "
                                "(run scripts/make_prompts.py)"))
    return out
