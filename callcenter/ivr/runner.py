"""Runs an IVR flow on a call leg.

``await IvrRunner(scripts, services, sounds_dir).run(leg, entry="hotline", variables=...)``
walks the script's nodes until the flow hangs up, transfers, queues the caller to an agent,
or the caller hangs up. A node that fails at run time (CRM down, a variable missing, a bad
amount) never kills the call: it is logged with the call id and the flow goes to the node's
``on_error``, else the script's ``on_error``, else apologises and hangs up.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter import logs, privacy
from callcenter.dialer.policy import DialPolicy, uri_allowed
from callcenter.exceptions import CallGone
from callcenter.ivr import lookup, model, prompts
from callcenter.ivr.model import Node, PromptItem, Prompts, Question, Script, ScriptSet, split_prompt
from callcenter.ivr.saynumber import SayError, SayOptions, parse_date, say
from callcenter.ivr.services import IvrServices, QueueOutcome, QueueRequest
from callcenter.telephony.api import Leg

MAX_STEPS = 500           # a flow that visits this many nodes is looping: end it politely
HIDDEN = "***"            # what the CDR, events, traces and logs keep of a sensitive collect's digits
Trace = Callable[[str, str, dict[str, Any]], None]
Tts = Callable[[str, str], Awaitable[str | None]]


class NodeError(Exception):
    """A node could not do its job; the flow takes its error path."""


@dataclass
class IvrResult:
    path: list[str] = field(default_factory=list)                  # "hotline.menu", in visit order
    inputs: list[tuple[str, str]] = field(default_factory=list)    # (node path, digits; "" = timeout)
    variables: dict[str, Any] = field(default_factory=dict)
    survey: dict[str, int] = field(default_factory=dict)
    outcome: str = "hangup"     # hangup, caller_hangup, transferred, agent, callback, queue_<outcome>, error
    language: str = "vi"
    queue_outcome: str | None = None
    errors: list[str] = field(default_factory=list)                # "node: message", for the CDR

    @property
    def ivr_path(self) -> str:
        return ">".join(self.path)

    def cdr_fields(self) -> dict[str, Any]:
        """What a call's CDR keeps of its IVR run (CallRecord field -> value)."""
        return {"ivr_path": self.ivr_path, "ivr_digits": ",".join(f"{node}={d}" for node, d in self.inputs),
                "language": self.language, "survey": dict(self.survey),
                "customer_id": str(self.variables.get("customer_id") or "") or None}

    @property
    def digits(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for node, d in self.inputs:
            out.setdefault(node, []).append(d)
        return out


@dataclass
class _End:
    outcome: str


@dataclass
class _Goto:
    script: str
    node: str | None


@dataclass(frozen=True)
class _Asking:
    """How a node asks for keys (menu, language, collect, a survey question)."""

    prompts: Prompts
    barge_in: bool
    attempts: int
    timeout: float
    invalid_prompts: Prompts
    timeout_prompts: Prompts
    inter_digit_timeout: float | None = None
    terminator: str | None = None
    sensitive: bool = False


_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: Any, variables: Mapping[str, Any]) -> Any:
    """``"{name}"`` templates. A template that is exactly one ``{var}`` keeps the value's type."""
    if not isinstance(template, str):
        return template
    whole = _TEMPLATE.fullmatch(template)
    if whole:
        if variables.get(whole[1]) is None:
            raise NodeError(f"variable {whole[1]!r} is not set")
        return variables[whole[1]]

    def sub(m: re.Match[str]) -> str:
        if variables.get(m[1]) is None:
            raise NodeError(f"variable {m[1]!r} is not set")
        return str(variables[m[1]])

    return _TEMPLATE.sub(sub, template)


class _Env(Mapping[str, Any]):
    """Branch-condition variables: the call's variables plus computed calendar facts."""

    def __init__(self, call: _Call) -> None:
        self.call = call

    def _computed(self, key: str) -> Any:
        c = self.call
        now = c.runner.clock()
        cal = c.runner.scripts.calendar.get(c.script.calendar)
        if key == "business_hours":
            return cal.is_open(now) if cal else True
        if key == "holiday":
            return bool(cal.holiday(now)) if cal else False
        tz = cal.tz if cal else dt.UTC
        local = now.astimezone(tz)
        return {"hour": local.hour, "minute": local.minute, "weekday": local.isoweekday(),
                "today": local.date().isoformat()}.get(key)

    def __getitem__(self, key: str) -> Any:
        if key == "language":
            return self.call.lang
        if key in self.call.vars:
            return self.call.vars[key]
        if key in ("business_hours", "holiday", "hour", "minute", "weekday", "today"):
            return self._computed(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.call.vars)

    def __len__(self) -> int:
        return len(self.call.vars)


@dataclass
class _Call:
    runner: IvrRunner
    leg: Leg
    script: Script
    lang: str
    vars: dict[str, Any]
    result: IvrResult
    log: Any
    routing: dict[str, Any] = field(default_factory=dict)
    connected: bool = False
    language_preset: bool = False
    verified: bool = False             # the caller's number is proven (trusted P-Asserted-Identity, or we dialed it)
    unverified_identity: bool = False  # a lookup keyed on an unproven number answered: no priority from it
    sensitive: set[str] = field(default_factory=set)   # variables holding a sensitive collect's digits
    queue: str | None = None           # the queue the caller last waited in (a voicemail's box)

    def shown(self) -> dict[str, Any]:
        """The variables as they may leave the call (result, agent's screen pop): sensitive ones hidden."""
        return {k: HIDDEN if k in self.sensitive else v for k, v in self.vars.items()}

    def hide(self, text: str) -> str:
        """Text (an error message) with the digits of sensitive variables replaced."""
        for name in self.sensitive:
            value = str(self.vars.get(name) or "")
            if value:
                text = text.replace(value, HIDDEN)
        return text


class IvrRunner:
    def __init__(self, scripts: ScriptSet, services: IvrServices, sounds_dir: str | Path, *,
                 recordings_dir: str | Path | None = None, tts: Tts | None = None,
                 clock: Callable[[], dt.datetime] | None = None, trace: Trace | None = None,
                 dial_policy: DialPolicy | None = None, trunk: str = "") -> None:
        self.scripts = scripts
        self.services = services
        self.sounds_dir = Path(sounds_dir)
        self.recordings_dir = Path(recordings_dir) if recordings_dir else Path("var/recordings")
        self.tts = tts
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.trace = trace
        self.dial_policy = dial_policy or DialPolicy()   # transfer targets that are numbers on the trunk
        self.trunk = trunk

    # ------------------------------------------------------------ driving

    async def run(self, leg: Leg, entry: str = "hotline", variables: dict[str, Any] | None = None,
                  language: str | None = None, caller_verified: bool | None = None) -> IvrResult:
        """``caller_verified``: None takes the leg's word (``leg.caller_verified``, False when absent);
        the dialer passes True for the customers it dialed itself."""
        script = self.scripts.scripts.get(entry)
        if script is None:
            raise KeyError(f"no IVR script named {entry!r}")
        vars_ = dict(script.variables)
        vars_.update(variables or {})
        vars_.setdefault("caller", leg.caller)
        vars_.setdefault("called", leg.called)
        vars_["call_id"] = leg.id
        lang = language or str(vars_.get("language") or "") or script.default_language
        if lang not in script.languages:
            lang = script.default_language
        result = IvrResult(language=lang)
        call = _Call(self, leg, script, lang, vars_, result, logs.get("ivr", call_id=leg.id, script=entry),
                     language_preset=bool(language or (variables or {}).get("language")),
                     verified=bool(getattr(leg, "caller_verified", False) if caller_verified is None
                                   else caller_verified))
        vars_["caller_verified"] = call.verified
        try:
            await self._walk(call)
        except CallGone:
            result.outcome = "agent" if call.connected else "caller_hangup"
        result.variables = dict(call.shown(), language=call.lang)
        result.language = call.lang
        # debug: the worker's "call ended" line carries the same outcome and path at info
        call.log.debug("ivr_done", outcome=result.outcome, path=result.ivr_path, errors=len(result.errors))
        return result

    def _emit(self, call: _Call, event: str, node: str, **detail: Any) -> None:
        if self.trace:
            self.trace(event, node, detail)

    async def _walk(self, call: _Call) -> None:
        node_id: str | None = call.script.start
        for _ in range(MAX_STEPS):
            if node_id is None:
                await self._finish(call, "agent" if call.connected else "hangup")
                return
            node = call.script.nodes[node_id]
            here = f"{call.script.name}.{node.id}"
            call.result.path.append(here)
            self._emit(call, "node", here, type=node.type)
            try:
                nxt = await self._exec(node, call, here)
            except CallGone:
                raise
            except Exception as exc:  # any node failure takes the error path, never the call
                raw = str(exc) if isinstance(exc, NodeError | SayError | lookup.HttpLookupError) \
                    else f"{type(exc).__name__}: {exc}"
                message = call.hide(raw)   # a traceback would repeat a sensitive value: none then
                call.result.errors.append(f"{here}: {message}")
                call.log.warning("ivr_node_failed", node=here, error=message,
                                 exc_info=message == raw and not isinstance(exc, NodeError | SayError
                                                                          | lookup.HttpLookupError))
                self._emit(call, "error", here, message=message)
                target = node.on_error or call.script.on_error
                if target and target != node.id:
                    node_id = target
                    continue
                await self._polite_end(call)
                return
            if isinstance(nxt, _End):   # before the ended check: a transfer ends the leg on purpose
                await self._finish(call, nxt.outcome)
                return
            if call.leg.ended:
                raise CallGone(call.leg.id)
            if isinstance(nxt, _Goto):
                call.script = self.scripts.scripts[nxt.script]
                if call.lang not in call.script.languages:
                    call.lang = call.script.default_language
                node_id = nxt.node or call.script.start
                continue
            node_id = nxt
        call.log.error("ivr_step_limit", steps=MAX_STEPS, path_tail=call.result.path[-5:])
        call.result.errors.append(f"step limit {MAX_STEPS} reached")
        await self._polite_end(call)

    async def _finish(self, call: _Call, outcome: str) -> None:
        call.result.outcome = "agent" if call.connected and outcome == "hangup" else outcome
        self._emit(call, "end", "", outcome=call.result.outcome)
        if not call.leg.ended:
            await call.leg.hangup()

    async def _polite_end(self, call: _Call) -> None:
        call.result.outcome = "error"
        try:
            await self._play(call, "", (PromptItem(name="system/sorry_error"),), barge_in=False)
        except CallGone:
            pass
        except Exception:  # the apology itself failing must still hang up
            call.log.exception("ivr_apology_failed")
        self._emit(call, "end", "", outcome="error")
        if not call.leg.ended:
            await call.leg.hangup()

    # ------------------------------------------------------------ prompts

    async def _resolve(self, call: _Call, items: tuple[PromptItem, ...]) -> tuple[list[str], list[str]]:
        """(absolute paths, names for the trace)."""
        names: list[str] = []
        paths: list[str] = []
        for item in items:
            if item.name:
                names.append(item.name)
                lang, name = split_prompt(item.name, call.lang)
                paths.append(prompts.path(self.sounds_dir, name, lang))
            elif item.say == "text":
                text = str(render(item.value, call.vars))
                wav = await self.tts(text, call.lang) if self.tts else None
                names.append(f"tts:{text}")
                if wav:
                    paths.append(wav)
            else:
                value = render(item.value, call.vars)
                said = say(item.say or "number", value, call.lang,
                           SayOptions(le=item.le, tu=item.tu, currency=item.currency, mung=item.mung))
                names += said
                paths += [prompts.path(self.sounds_dir, n, call.lang) for n in said]
        return paths, names

    async def _play(self, call: _Call, here: str, items: tuple[PromptItem, ...], barge_in: bool) -> str | None:
        if not items:
            return None
        paths, names = await self._resolve(call, items)
        self._emit(call, "play", here, prompts=names, language=call.lang)
        if not paths:
            return None
        digit = await call.leg.play(paths, barge_in=barge_in)
        if digit:
            # the digit stays buffered for the next collect; the trace shows the prompt was cut short
            self._emit(call, "barge_in", here, digit=digit)
        return digit

    # ------------------------------------------------------------ nodes

    async def _exec(self, node: Node, call: _Call, here: str) -> str | _End | _Goto | None:
        handler: Callable[[Node, _Call, str], Awaitable[str | _End | _Goto | None]] = \
            getattr(self, f"_node_{node.type}")
        return await handler(node, call, here)

    async def _node_play(self, node: Node, call: _Call, here: str) -> str | None:
        await self._play(call, here, node.prompts, node.barge_in)
        return node.next

    _node_say = _node_play

    async def _ask(self, ask: _Asking, call: _Call, here: str, max_digits: int,
                   accept: Callable[[str], bool]) -> str | None:
        """Prompt, read digits, retry with invalid/timeout prompts. None when attempts ran out."""
        items = ask.prompts
        for attempt in range(ask.attempts):
            await self._play(call, here, items, ask.barge_in)
            got = await call.leg.collect(max_digits, ask.timeout, ask.inter_digit_timeout, ask.terminator)
            kept = (HIDDEN if got else "") if ask.sensitive else got   # a timeout stays visible
            call.result.inputs.append((here, kept))
            self._emit(call, "input", here, digits=kept, attempt=attempt + 1)
            if got and accept(got):
                return got
            retry = ask.invalid_prompts if got else ask.timeout_prompts
            items = retry + ask.prompts
            if attempt + 1 == ask.attempts and retry:
                await self._play(call, here, retry, barge_in=False)
        return None

    async def _node_menu(self, node: Node, call: _Call, here: str) -> str | _End | None:
        o = node.options(model.MenuOptions)
        ask = _Asking(node.prompts, node.barge_in, o.attempts, o.timeout, o.invalid_prompts, o.timeout_prompts)
        got = await self._ask(ask, call, here, 1, lambda d: d in o.options)
        if got is None:
            if o.default:
                return o.default
            await self._play(call, here, (PromptItem(name="system/goodbye"),), barge_in=False)
            return _End("hangup")
        option = o.options[got]
        for k, v in option.set.items():
            self._set(call, here, k, render(v, call.vars), sensitive=self._derived(call, v))
        return option.next

    async def _node_language(self, node: Node, call: _Call, here: str) -> str | None:
        o = node.options(model.LanguageOptions)
        if call.language_preset and not o.ask_always:
            self._emit(call, "set", here, name="language", value=call.lang, preset=True)
            return node.next
        ask = _Asking(node.prompts, node.barge_in, o.attempts, o.timeout, o.invalid_prompts, o.timeout_prompts)
        got = await self._ask(ask, call, here, 1, lambda d: d in o.options)
        lang = o.options[got] if got else (o.default_language or call.lang)
        call.lang = lang
        self._emit(call, "set", here, name="language", value=lang)
        return node.next

    async def _node_collect(self, node: Node, call: _Call, here: str) -> str | _End | None:
        o = node.options(model.CollectOptions)

        def accept(d: str) -> bool:
            if len(d) < o.min_digits or (o.pattern and not re.fullmatch(o.pattern, d)):
                return False
            if o.validate:
                try:
                    day = parse_date(d)
                except SayError:
                    return False
                today = self.clock().astimezone(self._tz(call)).date()
                return o.validate == "date" or day >= today
            return True

        ask = _Asking(node.prompts, node.barge_in, o.attempts, o.timeout, o.invalid_prompts, o.timeout_prompts,
                      o.inter_digit_timeout, o.terminator, o.sensitive)
        got = await self._ask(ask, call, here, o.max_digits, accept)
        if got is None:
            if o.on_invalid:
                return o.on_invalid
            raise NodeError(f"no valid input after {o.attempts} attempts")
        if o.validate:
            self._set(call, here, f"{o.variable}_raw", got, sensitive=o.sensitive)
            got = parse_date(got).isoformat()
        self._set(call, here, o.variable, got, sensitive=o.sensitive)
        return node.next

    def _tz(self, call: _Call) -> dt.tzinfo:
        cal = self.scripts.calendar.get(call.script.calendar)
        return cal.tz if cal else dt.UTC

    def _set(self, call: _Call, here: str, name: str, value: Any, sensitive: bool = False) -> None:
        if name == "language":
            if value not in call.script.languages:
                raise NodeError(f"language {value!r} is not one of the script's languages")
            call.lang = value
        else:
            call.vars[name] = value
            if sensitive:
                call.sensitive.add(name)
            else:
                call.sensitive.discard(name)
        self._emit(call, "set", here, name=name, value=HIDDEN if sensitive else value)

    @staticmethod
    def _derived(call: _Call, template: Any) -> bool:
        """Whether a template reads a sensitive variable (what it renders is sensitive too)."""
        return isinstance(template, str) and any(m[1] in call.sensitive for m in _TEMPLATE.finditer(template))

    async def _node_branch(self, node: Node, call: _Call, here: str) -> str | None:
        o = node.options(model.BranchOptions)
        env = _Env(call)
        for cond, nxt in o.cases:
            if cond.evaluate(env):
                self._emit(call, "branch", here, when=cond.text, next=nxt)
                return nxt
        self._emit(call, "branch", here, when="default", next=o.default)
        return o.default

    async def _node_set(self, node: Node, call: _Call, here: str) -> str | None:
        o = node.options(model.SetOptions)
        for k, v in o.variables.items():
            self._set(call, here, k, render(v, call.vars), sensitive=self._derived(call, v))
        for key, value in (("queue", o.queue), ("skills", o.skills), ("priority", o.priority)):
            if value is not None:
                call.routing[key] = value
                self._emit(call, "set", here, name=key, value=value)
        if o.language:
            self._set(call, here, "language", o.language)
        await self._play(call, here, node.prompts, node.barge_in)
        return node.next

    async def _node_queue(self, node: Node, call: _Call, here: str) -> str | _End | None:
        o = node.options(model.QueueOptions)
        await self._play(call, here, node.prompts, node.barge_in)
        skills = o.skills if o.skills is not None else call.routing.get("skills") or {}
        priority = o.priority if o.priority is not None else call.routing.get("priority", 0)
        if call.unverified_identity and int(priority) > 0:
            # A From header is anyone's to write: a CRM answer about an unproven number (VIP, segment)
            # may fill the agent's screen, never jump the queue.
            self._emit(call, "priority_dropped", here, priority=priority, reason="caller_unverified")
            call.log.info("ivr_priority_dropped", node=here, priority=priority, reason="caller_unverified")
            priority = 0
        req = QueueRequest(
            queue=o.queue or call.routing.get("queue") or call.script.name, skills=dict(skills),
            priority=int(priority), max_wait=o.max_wait, callback_offer=o.callback_offer,
            callback_after=o.callback_after, announce_position=o.announce.position,
            announce_wait_time=o.announce.wait_time, announce_every=o.announce.every,
            music=str((self.sounds_dir / f"{o.music}.wav").resolve()), language=call.lang,
            sounds_dir=str(self.sounds_dir.resolve()),
            # the agent's screen pop (events.schema.screen_pop): the flow's variables, its path and keys
            variables={**call.shown(), "ivr_path": call.result.ivr_path, "language": call.lang,
                       "ivr_digits": call.result.cdr_fields()["ivr_digits"]})
        self._emit(call, "queue", here, queue=req.queue, skills=req.skills, priority=req.priority,
                   max_wait=req.max_wait, callback_offer=req.callback_offer)
        outcome = await self.services.queue(call.leg, req)
        call.queue = req.queue
        call.result.queue_outcome = outcome.value
        self._emit(call, "queue_outcome", here, outcome=outcome.value)
        if outcome is QueueOutcome.CONNECTED:
            call.connected = True
            return o.after_agent if o.after_agent and not call.leg.ended else _End("agent")
        if outcome is QueueOutcome.CALLBACK_REQUESTED:
            return o.on_callback or _End("callback")
        specific = {QueueOutcome.TIMEOUT: o.on_timeout, QueueOutcome.FULL: o.on_full,
                    QueueOutcome.NO_AGENTS: o.on_no_agents}[outcome]
        target = specific or o.on_failure
        if target:
            return target
        await self._play(call, here, (PromptItem(name="queue/all_busy"),), barge_in=False)
        return _End(f"queue_{outcome.value}")

    async def _node_transfer(self, node: Node, call: _Call, here: str) -> _End:
        o = node.options(model.TransferOptions)
        await self._play(call, here, node.prompts, node.barge_in)
        uri = str(render(o.uri, call.vars))
        await self._check_transfer(o, call, uri)
        self._emit(call, "transfer", here, uri=uri)
        await call.leg.transfer(uri)
        return _End("transferred")

    async def _check_transfer(self, o: model.TransferOptions, call: _Call, uri: str) -> None:
        """A transfer reaches only what the flow's author allowed: a fixed URI allows itself; a templated
        one must match the node's ``allow`` or the site's ``dialing.transfer_allow`` patterns. A number
        sent to the trunk (or a tel: URI) also passes the dial policy, like every number we dial."""
        if "{" in o.uri and not uri_allowed(uri, (*o.allow, *self.dial_policy.rules.transfer_allow)):
            raise NodeError("transfer target is not in the allow-list (node allow / dialing.transfer_allow)")
        m = re.match(r"^(?:sips?:([^@;>]*)@([^;>]*)|tel:([^;>]*))", uri)
        if m is None:
            return
        user, host, tel = m.groups()
        if tel is not None or (self.trunk and host == self.trunk):
            d = await self.dial_policy.check(tel if tel is not None else user, "transfer", call_id=call.leg.id)
            if not d.ok:
                raise NodeError(f"transfer refused by the dial policy ({d.reason})")

    async def _node_record(self, node: Node, call: _Call, here: str) -> str | None:
        o = node.options(model.RecordOptions)
        await self._play(call, here, node.prompts, barge_in=False)
        await self._play(call, here, o.beep, barge_in=False)
        privacy.private_dir(self.recordings_dir)
        out = self.recordings_dir / f"{call.leg.id}-{call.script.name}-{node.id}.wav"
        out.touch(mode=privacy.FILE_MODE)   # a voice message is personal data: 0640 from its first byte
        seconds = await call.leg.record(str(out), o.max_seconds, o.silence_seconds or None)
        if out.exists():
            privacy.private_file(out)
        self._set(call, here, o.variable, str(out))
        self._set(call, here, f"{o.variable}_seconds", round(seconds, 1))
        await self.services.emit("recording", {"node": here, "path": str(out), "seconds": round(seconds, 1),
                                               "queue": call.queue or call.script.name})
        return node.next

    async def _node_lookup(self, node: Node, call: _Call, here: str) -> str | None:
        o = node.options(model.LookupOptions)
        params = {k: str(render(v, call.vars)) for k, v in o.params.items()}
        headers = {k: str(render(v, call.vars)) for k, v in o.headers.items()}
        self._emit(call, "lookup", here, method=o.method, url=o.url)
        data = await lookup.fetch_json(o.method, o.url, params, headers, o.timeout)
        if not call.verified and _uses_caller(o):
            call.unverified_identity = True
            self._emit(call, "set", here, name="caller_verified", value=False)
        if o.result:
            found = {var: lookup.pick(data, jpath) for var, jpath in o.result.items()}
            if all(v is None for v in found.values()):
                raise NodeError("lookup answer has none of the expected fields")
            for var, value in found.items():
                if value is not None:
                    self._set(call, here, var, value)
        return node.next

    async def _node_survey(self, node: Node, call: _Call, here: str) -> str | None:
        o = node.options(model.SurveyOptions)
        answers: dict[str, int] = {}
        for q in o.questions:
            ask = _Asking(q.prompts, True, o.attempts, o.timeout, o.invalid_prompts, ())

            def on_scale(d: str, q: Question = q) -> bool:
                return d.isdigit() and q.min <= int(d) <= q.max

            got = await self._ask(ask, call, f"{here}.{q.id}", 1, on_scale)
            if got is not None:
                answers[q.id] = int(got)
                self._set(call, here, f"survey_{q.id}", int(got))
        call.result.survey.update(answers)
        await self.services.emit("survey", {"script": call.script.name, "node": node.id, "answers": answers})
        return node.next

    async def _node_event(self, node: Node, call: _Call, here: str) -> str | None:
        o = node.options(model.EventOptions)
        data = {k: HIDDEN if self._derived(call, v) else render(v, call.vars) for k, v in o.data.items()}
        self._emit(call, "event", here, name=o.name, data=data)
        await self.services.emit(o.name, data)
        await self._play(call, here, node.prompts, node.barge_in)
        return node.next

    async def _node_dnc(self, node: Node, call: _Call, here: str) -> str | None:
        o = node.options(model.DncOptions)
        number = str(render(o.number, call.vars))
        scope = str(render(o.scope, call.vars))
        if not call.verified:
            # Pressing 9 must not put someone else's number on the list by spoofing it (nor a number the
            # caller keys): the request waits for a person to review it, in the queue log.
            self._emit(call, "dnc_request", here, scope=scope, verified=False)
            await self.services.emit("dnc_request", {"scope": scope, "verified": False, "number": number})
        else:
            self._emit(call, "dnc", here, scope=scope)
            await self.services.add_dnc(number, scope)
        await self._play(call, here, node.prompts, node.barge_in)
        return node.next

    async def _node_goto(self, node: Node, call: _Call, here: str) -> _Goto:
        await self._play(call, here, node.prompts, node.barge_in)
        o = node.options(model.GotoOptions)
        return _Goto(o.script, o.node)

    async def _node_hangup(self, node: Node, call: _Call, here: str) -> _End:
        await self._play(call, here, node.prompts, barge_in=False)
        return _End("hangup")


def _uses_caller(o: model.LookupOptions) -> bool:
    """Whether a lookup is keyed on the caller's number (url, params or headers template {caller})."""
    texts = [o.url, *o.params.values(), *o.headers.values()]
    return any(isinstance(t, str) and "{caller}" in t for t in texts)
