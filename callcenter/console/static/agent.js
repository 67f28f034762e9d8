// The agent desktop: state and time in it, ready / pause / log out; the screen pop of an offered call
// (call.offered on the event stream); on the call: timer, hold, notes; then the wrap-up (disposition,
// resolved yes/no, notes) saved on the call's CDR.
(function () {
  "use strict";
  const { html, useState, useEffect, useRef, t, api, boot, Header, duration, events, mount } = window.CC;
  const id = boot.agent;
  const agentPath = "/agents/" + encodeURIComponent(id);
  const asAgent = "?agent=" + encodeURIComponent(id);

  function codesFor(call) {
    const w = boot.wrapup || {};
    return (call.campaign && (w.campaigns || {})[call.campaign]) || (call.queue && (w.queues || {})[call.queue])
      || w.default || { codes: [], required: false };
  }

  function StateCard({ agent, since, now, onChange, error }) {
    const [reason, setReason] = useState(boot.pause_reasons[0] || "break");
    const state = agent ? agent.state : "logged_out";
    const act = (path, body) => onChange(api("POST", agentPath + path, body || {}));
    const inState = agent ? agent.state_seconds + (now - since) / 1000 : 0;
    return html`<section class="card" aria-labelledby="state-h">
      <h2 id="state-h">${t("state")}</h2>
      <div class="row"><span id="agent-state" class=${"state " + state} data-state=${agent ? state : "loading"}>
        ${t("state." + state)}${agent && agent.pause_reason ? " · " + t("reason." + agent.pause_reason) : ""}</span>
        <span class="muted">${t("time_in_state")}: <span id="state-time">${duration(inState)}</span></span></div>
      <div class="row">
        ${state === "logged_out"
          ? html`<button type="button" class="primary" id="btn-login" onClick=${() => act("/login", { ready: true })}>
              ${t("login_queues")}</button>`
          : html`<button type="button" class="primary" id="btn-ready" disabled=${state === "available"}
              onClick=${() => act("/ready")}>${t("ready")}</button>
            <label class="inline" for="pause-reason">${t("pause.reason")}</label>
            <select id="pause-reason" value=${reason} onChange=${(e) => setReason(e.target.value)}>
              ${boot.pause_reasons.map((r) => html`<option value=${r}>${t("reason." + r)}</option>`)}
            </select>
            <button type="button" id="btn-pause" onClick=${() => act("/pause", { reason })}>${t("pause")}</button>
            <button type="button" id="btn-logout" onClick=${() => act("/logout")}>${t("logout")}</button>`}
      </div>
      ${error && html`<p class="error" role="alert" id="agent-error">${t("error")}: ${error}</p>`}
    </section>`;
  }

  function Pop({ pop }) {
    const d = pop.data || {};
    const row = (key, value, elId) => value !== undefined && value !== null && value !== ""
      ? html`<dt>${t(key)}</dt><dd id=${elId}>${value}</dd>` : null;
    return html`<dl class="pop" id="screen-pop" data-call=${pop.call_id} data-offered-at=${pop.ts}
        data-shown-at=${pop.shown_at}>
      ${row("pop.caller", pop.caller, "pop-caller")}
      ${row("pop.name", d.name, "pop-name")}
      ${row("pop.customer_id", d.customer_id, "pop-customer")}
      ${/^(true|yes|1)$/i.test(String(d.vip)) ? html`<dt>${t("pop.vip")}</dt>
        <dd id="pop-vip"><span class="badge">VIP</span></dd>` : null}
      ${row("pop.language", d.language, "pop-language")}
      ${row("pop.menu", d.ivr_path, "pop-menu")}
      ${row("pop.queue", pop.queue, "pop-queue")}
      ${row("pop.wait", pop.wait_s !== undefined ? duration(pop.wait_s) : null, "pop-wait")}
    </dl><${History} callId=${pop.call_id} />`;
  }

  // The caller's contacts of the last 7 days with their dispositions (GET /calls/{id}/contacts): asked once the
  // pop shows, so the pop never waits for the CDR store.
  function History({ callId }) {
    const [rows, setRows] = useState(null);
    const [error, setError] = useState("");
    useEffect(() => {
      setRows(null); setError("");
      api("GET", "/calls/" + encodeURIComponent(callId) + "/contacts" + asAgent)
        .then((r) => setRows(r.contacts)).catch((err) => setError(err.message));
    }, [callId]);
    const yesNo = (v) => v === true ? t("wrapup.yes") : v === false ? t("wrapup.no") : "";
    return html`<section aria-labelledby="history-h" id="pop-history" data-loaded=${rows ? "yes" : "no"}>
      <h3 id="history-h">${t("pop.history")}</h3>
      ${error ? html`<p class="error" role="alert" id="history-error">${error}</p>`
        : rows && rows.length === 0 ? html`<p class="muted" id="history-none">${t("pop.history.none")}</p>`
        : rows && html`<table><thead><tr><th>${t("pop.history.when")}</th>
            <th>${t("pop.history.direction")}</th><th>${t("pop.queue")}</th><th>${t("pop.history.agent")}</th>
            <th>${t("pop.history.disposition")}</th><th>${t("pop.history.resolved")}</th></tr></thead>
          <tbody>${rows.map((r) => html`<tr data-call=${r.call_id}>
            <td>${new Date(r.start_ts * 1000).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" })}</td>
            <td>${t("pop.history." + (r.direction === "outbound" ? "outbound" : "inbound"))}</td>
            <td>${r.queue || r.campaign || ""}</td><td>${r.agent_id || ""}</td>
            <td class="disposition">${r.disposition || html`<span class="muted">${r.outcome || ""}</span>`}</td>
            <td class="resolved">${yesNo(r.resolved)}</td></tr>`)}</tbody></table>`}
    </section>`;
  }

  // A party for the call: a blind transfer to a queue, an agent or a number (POST /calls/{id}/transfer), or
  // another agent or a number added to a conference (POST /calls/{id}/conference/add). ``name`` is the
  // action: "transfer" or "conference"; the form's elements are named after it.
  // With ``onConsult`` (the transfer) it may consult first: the caller is held while the agent talks to the
  // target, then completes, cancels or makes it three-way (Consult).
  function TargetForm({ call, name, path, kinds, onDone, onConsult }) {
    const [kind, setKind] = useState(kinds[0]);
    const [target, setTarget] = useState("");
    const [attended, setAttended] = useState(false);
    const [status, setStatus] = useState("");
    async function send(e) {
      e.preventDefault();
      try {
        const body = attended ? { [kind]: target, mode: "attended" } : { [kind]: target };
        const r = await api("POST", "/calls/" + encodeURIComponent(call.call_id) + path + asAgent, body);
        setStatus(""); setTarget("");
        if (attended) onConsult({ ...r, typed: target }); else onDone(t(name + ".done") + " " + target);
      } catch (err) { setStatus(err.message); }
    }
    return html`<form class="row" id=${name + "-form"} onSubmit=${send}>
      <select id=${name + "-kind"} aria-label=${t(name + ".kind")} value=${kind} onChange=${(e) => setKind(e.target.value)}>
        ${kinds.map((k) => html`<option value=${k}>${t("transfer." + k)}</option>`)}</select>
      <input type="text" id=${name + "-target"} aria-label=${t("transfer.target")} class="short" maxlength="32" required
        value=${target} onInput=${(e) => setTarget(e.target.value)} />
      ${onConsult && html`<input type="checkbox" id=${name + "-attended"} checked=${attended}
        onChange=${(e) => setAttended(e.target.checked)} /><label class="inline" for=${name + "-attended"}>
        ${t("transfer.attended")}</label>`}
      <button type="submit" id=${"btn-" + name}>${t(name)}</button>
      ${status && html`<span class="error" role="alert" id=${name + "-error"}>${status}</span>`}
    </form>`;
  }

  // An attended transfer under way: the target's state (GET /calls/{id}/transfer), then complete, cancel or
  // three-way.
  function Consult({ call, consult, onOver }) {
    const [state, setState] = useState(consult.state);
    const [error, setError] = useState("");
    const base = "/calls/" + encodeURIComponent(call.call_id) + "/transfer";
    useEffect(() => {
      const poll = setInterval(async () => {
        try { setState((await api("GET", base + asAgent)).state); } catch (err) { onOver(""); }
      }, 1000);
      return () => clearInterval(poll);
    }, []);
    async function act(what) {
      try {
        await api("POST", base + "/" + what + asAgent, {});
        const done = { complete: "completed", conference: "conference", cancel: "" }[what];
        onOver(done && t("transfer.state." + done) + ": " + consult.typed, what);
      } catch (err) { setError(err.message); }
    }
    return html`<div class="monitor" id="consult"><p>${t("transfer.consult")} ${consult.typed}:
        <strong id="consult-state">${t("transfer.state." + state)}</strong></p>
      <div class="row">
        ${["complete", "conference", "cancel"].map((w) => html`<button type="button" id=${"consult-" + w}
          disabled=${w !== "cancel" && state !== "consulting"} onClick=${() => act(w)}>${t("transfer." + w)}</button>`)}
      </div>${error && html`<p class="error" role="alert">${error}</p>`}</div>`;
  }

  // The parties of the call's conference (GET /calls/{id}/conference, asked every second while there is one):
  // mute / unmute each, hold / resume an added party, and leave: the agent hangs up, the others stay connected.
  function Conference({ call, onLeft }) {
    const [parties, setParties] = useState([]);
    const [error, setError] = useState("");
    const base = "/calls/" + encodeURIComponent(call.call_id) + "/conference";
    const gone = useRef(false);      // 404: the conference is over, ask no more
    async function load() {
      if (gone.current) return;
      try { setParties((await api("GET", base + asAgent)).parties); }
      catch (err) { setParties([]); gone.current = err.status === 404; }
    }
    useEffect(() => {
      load();
      const poll = setInterval(load, 1000);
      return () => clearInterval(poll);
    }, [call.call_id]);
    async function act(path) {
      try { await api("POST", base + path + asAgent, {}); setError(""); await load(); return true; }
      catch (err) { setError(err.message); return false; }
    }
    if (parties.length === 0) return null;
    // the caller and this desk's agent are the parties named "caller" and "agent"; an added agent's kind is
    // "agent" too (its party is its agent id)
    const added = (p) => p.party !== "caller" && p.party !== "agent";
    const who = (p) => added(p) ? (p.agent || p.party) : t("conference.party." + p.party);
    return html`<div class="monitor" id="conference"><h3>${t("conference.parties")}</h3>
      <table><tbody>${parties.map((p) => html`<tr data-party=${p.party} data-state=${p.state}
          data-muted=${p.muted ? "yes" : "no"} data-held=${p.held ? "yes" : "no"}>
        <td>${who(p)}</td><td>${t("conference.state." + p.state)}${p.muted ? " · " + t("conference.muted") : ""}
          ${p.held ? " · " + t("conference.held") : ""}</td>
        <td><button type="button" class="mute" onClick=${() => act("/" + encodeURIComponent(p.party) + (p.muted ? "/unmute" : "/mute"))}>
          ${t(p.muted ? "conference.unmute" : "conference.mute")}</button>
          ${added(p) && html`<button type="button" class="hold"
            onClick=${() => act("/" + encodeURIComponent(p.party) + (p.held ? "/unhold" : "/hold"))}>
            ${t(p.held ? "conference.unhold" : "conference.hold")}</button>`}</td></tr>`)}</tbody></table>
      <div class="row"><button type="button" class="danger" id="conference-leave"
        onClick=${async () => { if (await act("/leave")) onLeft(); }}>${t("conference.leave")}</button></div>
      ${error && html`<p class="error" role="alert" id="conference-error">${error}</p>`}</div>`;
  }

  // ``conf``: the call id whose conference panel shows (a party added from here, a consult made three-way, or
  // call.conference on the event stream: whoever added the party); ``consult``: the attended transfer under way
  // (started from here, or call.consult on the event stream: whoever started it)
  function CallCard({ call, pop, now, notes, setNotes, onHold, onHangup, onTransferred, conf, setConf, consult,
                      setConsult, error }) {
    return html`<section class="card" aria-labelledby="call-h" id="call-card">
      <h2 id="call-h">${t("call")}</h2>
      ${pop ? html`<${Pop} pop=${pop} />` : !call && html`<p class="muted" id="no-call">${t("call.none")}</p>`}
      ${call && html`<div class="row"><span>${t("call.timer")}: <strong id="call-timer">
          ${duration((now - call.since) / 1000)}</strong></span>
        ${call.held && html`<span class="badge" id="held">${t("held")}</span>`}
        <button type="button" id="btn-hold" onClick=${onHold}>${call.held ? t("unhold") : t("hold")}</button>
        <button type="button" class="danger" id="btn-hangup" onClick=${onHangup}>${t("hangup")}</button></div>
        ${consult && consult.call_id === call.call_id
          ? html`<${Consult} call=${call} consult=${consult} onOver=${(note, what) => {
              // a three-way call is a conference of this desk's like one it added a party to: its panel shows
              setConsult(null); if (what === "conference") setConf(call.call_id); if (note) onTransferred(note); }} />`
          : html`<${TargetForm} call=${call} name="transfer" path="/transfer" kinds=${["queue", "agent", "number"]}
              onDone=${onTransferred} onConsult=${setConsult} />`}
        <${TargetForm} call=${call} name="conference" path="/conference/add" kinds=${["agent", "number"]}
          onDone=${(note) => { setConf(call.call_id); onTransferred(note); }} />
        ${conf === call.call_id && html`<${Conference} call=${call} onLeft=${() => setConf(null)} />`}`}
      ${(call || pop) && html`<label for="notes">${t("notes")}</label>
        <textarea id="notes" maxlength="2000" value=${notes} onInput=${(e) => setNotes(e.target.value)}></textarea>`}
      ${error && html`<p class="error" role="alert">${t("error")}: ${error}</p>`}
    </section>`;
  }

  function Wrapup({ call, notes, setNotes, onSaved }) {
    const rule = codesFor(call);
    const [code, setCode] = useState("");
    const [resolved, setResolved] = useState(null);
    const [status, setStatus] = useState("");
    async function save(e) {
      e.preventDefault();
      if (rule.required && !code) { setStatus(t("wrapup.required")); return; }
      const body = { disposition: code || null, resolved, notes };
      for (let attempt = 0; ; attempt++) {
        try {
          await api("POST", "/calls/" + encodeURIComponent(call.call_id) + "/wrapup" + asAgent, body);
          onSaved(call.call_id);
          return;
        } catch (err) {
          // 409: the call's record is not stored yet (the CDR writer's lag): try again shortly
          if (err.status !== 409 || attempt >= 20) { setStatus(err.message); return; }
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    }
    return html`<section class="card" aria-labelledby="wrap-h" id="wrapup-card">
      <h2 id="wrap-h">${t("wrapup")}</h2>
      <form id="wrapup-form" onSubmit=${save}>
        <label for="disposition">${t("wrapup.disposition")}</label>
        <select id="disposition" value=${code} aria-required=${rule.required ? "true" : "false"} onChange=${(e) => { setCode(e.target.value); setStatus(""); }}>
          <option value="">${t("wrapup.choose")}</option>
          ${rule.codes.map((c) => html`<option value=${c}>${c}</option>`)}
        </select>
        <fieldset><legend>${t("wrapup.resolved")}</legend>
          <input type="radio" name="resolved" id="resolved-yes" checked=${resolved === true}
            onChange=${() => setResolved(true)} /><label class="inline" for="resolved-yes">${t("wrapup.yes")}</label>
          <input type="radio" name="resolved" id="resolved-no" checked=${resolved === false}
            onChange=${() => setResolved(false)} /><label class="inline" for="resolved-no">${t("wrapup.no")}</label>
        </fieldset>
        <label for="wrap-notes">${t("notes")}</label>
        <textarea id="wrap-notes" maxlength="2000" value=${notes} onInput=${(e) => setNotes(e.target.value)}></textarea>
        <div class="row"><button type="submit" class="primary" id="wrapup-save">${t("wrapup.save")}</button></div>
        ${status && html`<p class="error" role="alert" id="wrapup-status">${status}</p>`}
      </form>
    </section>`;
  }

  // Click-to-call: the agent's phone rings first, then the customer is dialed (POST /agents/{id}/dial).
  function Dial() {
    const [number, setNumber] = useState("");
    const [callerId, setCallerId] = useState(boot.caller_ids[0]);
    const [status, setStatus] = useState(null);     // {ok, text}
    async function dial(e) {
      e.preventDefault();
      try {
        const r = await api("POST", agentPath + "/dial", { number, caller_id: callerId });
        setStatus({ ok: true, text: t("dial.ringing") + " " + r.number });
      } catch (err) { setStatus({ ok: false, text: err.message }); }
    }
    return html`<section class="card" aria-labelledby="dial-h"><h2 id="dial-h">${t("dial")}</h2>
      <form id="dial-form" onSubmit=${dial}>
        <label for="dial-number">${t("dial.number")}</label>
        <input type="text" id="dial-number" inputmode="tel" maxlength="32" required value=${number}
          onInput=${(e) => setNumber(e.target.value)} />
        <label for="dial-caller-id">${t("dial.caller_id")}</label>
        <select id="dial-caller-id" value=${callerId} onChange=${(e) => setCallerId(e.target.value)}>
          ${boot.caller_ids.map((c) => html`<option value=${c}>${c}</option>`)}</select>
        <div class="row"><button type="submit" class="primary" id="dial-send">${t("dial.send")}</button></div>
        ${status && html`<p class=${status.ok ? "ok" : "error"} role="status" id="dial-status">${status.text}</p>`}
      </form></section>`;
  }

  // Preview dialing: the agent's next record of a preview campaign (held for it), then dial it or skip it.
  function Preview() {
    const [campaign, setCampaign] = useState(boot.preview_campaigns[0].id);
    const [record, setRecord] = useState(null);
    const [status, setStatus] = useState(null);     // {ok, text}
    const base = () => "/campaigns/" + encodeURIComponent(campaign) + "/preview";
    async function next() {
      try {
        const r = await api("GET", base() + asAgent);
        setRecord(r.number ? r : null);
        setStatus(r.number ? null : { ok: true, text: t("preview.none") });
      } catch (err) { setStatus({ ok: false, text: err.message }); }
    }
    async function act(what) {
      try {
        await api("POST", base() + "/" + encodeURIComponent(record.national) + "/" + what + asAgent, {});
        setStatus({ ok: true, text: t(what === "dial" ? "preview.dialing" : "preview.skipped") + " " + record.national });
        setRecord(null);
      } catch (err) { setStatus({ ok: false, text: err.message }); }
    }
    const data = record ? Object.entries(record.data || {}).filter(([, v]) => v !== "" && v !== null) : [];
    return html`<section class="card" aria-labelledby="preview-h"><h2 id="preview-h">${t("preview")}</h2>
      <div class="row">
        <select id="preview-campaign" aria-label=${t("campaign")} value=${campaign}
          onChange=${(e) => { setCampaign(e.target.value); setRecord(null); }}>
          ${boot.preview_campaigns.map((c) => html`<option value=${c.id}>${c.name}</option>`)}</select>
        <button type="button" id="preview-next" onClick=${next}>${t("preview.next")}</button></div>
      ${record && html`<dl class="pop" id="preview-record">
          <dt>${t("dial.number")}</dt><dd id="preview-number">${record.national}</dd>
          ${data.map(([k, v]) => html`<dt>${k}</dt><dd data-field=${k}>${String(v)}</dd>`)}
          <dt>${t("preview.attempt")}</dt><dd>${record.attempt}</dd></dl>
        <div class="row"><button type="button" class="primary" id="preview-dial" onClick=${() => act("dial")}>
          ${t("dial.send")}</button>
          <button type="button" id="preview-skip" onClick=${() => act("skip")}>${t("preview.skip")}</button></div>`}
      ${status && html`<p class=${status.ok ? "ok" : "error"} role="status" id="preview-status">${status.text}</p>`}
    </section>`;
  }

  function App() {
    const [agent, setAgent] = useState(null);
    const [since, setSince] = useState(Date.now());
    const [now, setNow] = useState(Date.now());
    const [pop, setPop] = useState(null);        // the offered call's screen pop (call.offered)
    const [call, setCall] = useState(null);      // {call_id, queue, since, held}: the call the agent is on
    const [wrap, setWrap] = useState(null);      // {call_id, queue}: the call waiting for its wrap-up
    const [saved, setSaved] = useState("");
    const [notes, setNotes] = useState("");
    const [error, setError] = useState("");
    const [callError, setCallError] = useState("");
    const [callNote, setCallNote] = useState("");     // what the agent did to the call (transferred, a party added)
    const [conf, setConf] = useState(null);           // the call id whose conference shows on the desk
    const [consult, setConsult] = useState(null);     // the consult under way on the call (its panel shows)
    const callRef = useRef(null);
    callRef.current = call;
    const popRef = useRef(null);
    popRef.current = pop;

    function ended(callId) {
      const c = callRef.current;
      if (!c || c.call_id !== callId) return;
      setWrap({ call_id: c.call_id, queue: c.queue, campaign: c.campaign });
      setCall(null);
      setPop(null);
    }

    async function refresh() {
      try {
        const a = await api("GET", agentPath);
        setAgent(a); setSince(Date.now()); setError("");
        const c = callRef.current;
        if (a.call_id && a.state === "on_call" && (!c || c.call_id !== a.call_id)) {
          const p = popRef.current;
          setCall({ call_id: a.call_id, queue: p && p.call_id === a.call_id ? p.queue : null, since: Date.now(),
                    held: false });
          setSaved("");
        } else if (c && a.call_id !== c.call_id) {
          ended(c.call_id);
        }
      } catch (err) { setError(err.message); }
    }

    useEffect(() => {
      refresh();
      const poll = setInterval(refresh, boot.events ? 5000 : 1000);
      const tick = setInterval(() => setNow(Date.now()), 250);
      const source = events(["agent.state", "call.offered", "call.answered", "call.held", "call.unheld",
                             "call.ended", "call.offer_missed", "call.conference", "call.consult"], (ev) => {
        if (ev.agent !== id) return;
        if (ev.type === "agent.state") refresh();
        else if (ev.type === "call.offered") {
          setPop({ ...ev, shown_at: Date.now() }); setSaved(""); setNotes(""); setCallNote("");
        }
        else if (ev.type === "call.offer_missed") setPop(null);
        else if (ev.type === "call.answered") {
          setCall({ call_id: ev.call_id, queue: ev.queue, campaign: ev.campaign, since: Date.now(), held: false });
          setSaved("");
        } else if (ev.type === "call.held" || ev.type === "call.unheld") {
          const c = callRef.current;
          if (c && c.call_id === ev.call_id) setCall({ ...c, held: ev.type === "call.held" });
        } else if (ev.type === "call.conference") {
          const c = callRef.current;
          if (c && c.call_id === ev.call_id) setConf(ev.call_id);
        } else if (ev.type === "call.consult") {
          const c = callRef.current;
          if (!c || c.call_id !== ev.call_id) return;
          const same = (k) => k && k.consult === ev.consult;
          if (ev.state === "ringing" || ev.state === "consulting") {
            setConsult((k) => same(k) ? k : { ...ev, typed: ev.target });
          } else {
            setConsult((k) => same(k) ? null : k);
            if (ev.state === "conference") setConf(ev.call_id);
          }
        } else if (ev.type === "call.ended") ended(ev.call_id);
      });
      return () => { clearInterval(poll); clearInterval(tick); if (source) source.close(); };
    }, []);

    async function onHold() {
      const c = callRef.current;
      if (!c) return;
      try {
        const r = await api("POST", "/calls/" + encodeURIComponent(c.call_id) + (c.held ? "/unhold" : "/hold") + asAgent, {});
        setCall({ ...c, held: r.held }); setCallError("");
      } catch (err) { setCallError(err.message); }
    }

    async function onHangup() {
      const c = callRef.current;
      if (!c) return;
      try {
        await api("POST", "/calls/" + encodeURIComponent(c.call_id) + "/hangup" + asAgent, {});
        setCallError("");
      } catch (err) { setCallError(err.message); }
    }

    function onChange(promise) {
      promise.then((r) => { if (r && r.agent) { setAgent(r.agent); setSince(Date.now()); } setError(""); })
        .catch((err) => setError(err.message));
    }

    return html`<${Header} title=${t("page.agent") + " · " + id} />
      <main>
        <${StateCard} agent=${agent} since=${since} now=${now} onChange=${onChange} error=${error} />
        <${CallCard} call=${call} pop=${pop} now=${now} notes=${notes} setNotes=${setNotes} onHold=${onHold}
          onHangup=${onHangup} onTransferred=${setCallNote} conf=${conf} setConf=${setConf}
          consult=${consult} setConsult=${setConsult} error=${callError} />
        ${callNote && html`<section class="card"><p class="ok" role="status" id="call-note">${callNote}</p></section>`}
        ${wrap && html`<${Wrapup} call=${wrap} notes=${notes} setNotes=${setNotes}
          onSaved=${(callId) => { setWrap(null); setNotes(""); setSaved(callId); }} />`}
        ${saved && html`<section class="card"><p class="ok" id="wrapup-saved" role="status">${t("wrapup.saved")}</p></section>`}
        ${boot.caller_ids.length > 0 && !call && !pop && agent && agent.state !== "logged_out" && html`<${Dial} />`}
        ${boot.preview_campaigns.length > 0 && !call && !pop && agent && agent.state !== "logged_out"
          && html`<${Preview} />`}
      </main>`;
  }
  mount(App);
})();
