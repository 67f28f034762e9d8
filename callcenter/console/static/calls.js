// The supervisor's live calls: every agent call of the supervisor's queues (agent, queue, caller masked, talk
// time, hold) kept live from the event stream, with listen / whisper / barge (the supervisor's own phone rings
// first; the mode can be switched during the session) and end; and the agents: force ready / pause / log out,
// and their skills.
(function () {
  "use strict";
  const { html, useState, useEffect, t, api, boot, Header, duration, useLive, mount } = window.CC;
  const MODES = ["listen", "whisper", "barge"];
  const REASONS = boot.pause_reasons || [];
  const enc = encodeURIComponent;

  const skillsText = (skills) => Object.entries(skills || {}).map(([k, v]) => k + "=" + v).join(", ");
  function parseSkills(text) {
    const out = {};
    for (const part of text.split(",").map((s) => s.trim()).filter(Boolean)) {
      const [name, level] = part.split("=").map((s) => s.trim());
      out[name] = Number(level);
    }
    return out;
  }

  // -- the monitor session (one at a time: the supervisor has one phone) ------------------------------

  function useMonitor(setError) {
    const [session, setSession] = useState(null);     // the API's session: call_id, mode, state
    useEffect(() => {
      if (!session) return undefined;
      const poll = setInterval(async () => {
        try { setSession(await api("GET", "/calls/" + enc(session.call_id) + "/monitor")); }
        catch (err) { if (err.status === 404) setSession(null); else setError(err.message); }
      }, 1000);
      return () => clearInterval(poll);
    }, [session && session.call_id]);

    async function monitor(callId, mode) {
      try {
        if (session && session.call_id === callId) {
          setSession(await api("POST", "/calls/" + enc(callId) + "/monitor/mode", { mode }));
        } else {
          if (session) await api("DELETE", "/calls/" + enc(session.call_id) + "/monitor", {});
          setSession(await api("POST", "/calls/" + enc(callId) + "/monitor", { mode }));
        }
        setError("");
      } catch (err) { setError(err.message); }
    }
    async function end() {
      if (!session) return;
      try { await api("DELETE", "/calls/" + enc(session.call_id) + "/monitor", {}); } catch (err) {
        if (err.status !== 404) setError(err.message);
      }
      setSession(null);
    }
    return { session, monitor, end };
  }

  function Calls({ calls, since, now, mon }) {
    const { session, monitor, end } = mon;
    const watched = session && calls.find((c) => c.call_id === session.call_id);
    return html`<section class="card wide" aria-labelledby="calls-h"><h2 id="calls-h">${t("page.calls")}</h2>
      <p class="muted" id="monitor-note">${t("calls.phone")}</p>
      ${session && html`<p class="monitor" role="status" id="monitor-status">${watched ? watched.agent_name || watched.agent
                                                                                 : session.agent} · ${session.state === "connected"
        ? t("monitor.connected") + " · " + t("monitor." + session.mode) : t("monitor.ringing")}</p>`}
      ${calls.length === 0 ? html`<p class="muted" id="calls-none">${t("calls.none")}</p>` : html`
      <div class="scroll"><table id="calls"><thead><tr><th>${t("wallboard.agent")}</th><th>${t("wallboard.queue")}</th>
        <th>${t("calls.caller")}</th><th>${t("calls.talk")}</th><th>${t("state")}</th><th>${t("calls.monitor")}</th></tr></thead>
      <tbody>${calls.map((c) => {
        const mine = session && session.call_id === c.call_id;
        return html`<tr data-call=${c.call_id} data-agent=${c.agent} class=${c.held ? "held" : ""}>
          <td>${c.agent_name || c.agent}</td><td class="queue">${c.queue}</td><td class="caller">${c.caller}</td>
          <td class="talk">${duration(c.talk_seconds + (now - since) / 1000)}</td>
          <td class="hold">${c.held ? t("calls.held") : t("calls.talking")}</td>
          <td>${MODES.map((m) => html`<button type="button" class=${"mon-" + m + (mine && session.mode === m ? " primary" : "")}
              aria-pressed=${mine && session.mode === m ? "true" : "false"}
              onClick=${() => monitor(c.call_id, m)}>${t("monitor." + m)}</button> `)}
            <button type="button" class="mon-end" disabled=${!mine} onClick=${end}>${t("monitor.end")}</button></td>
        </tr>`;
      })}</tbody></table></div>`}
    </section>`;
  }

  // -- the agents ---------------------------------------------------------------------------------------

  function Agents({ agents, since, now, refresh, setError }) {
    const [reason, setReason] = useState(REASONS[0] || "other");
    const [skills, setSkills] = useState({});           // agent id -> the text being edited
    async function act(id, what, body) {
      try { await api("POST", "/agents/" + enc(id) + "/" + what, body || {}); refresh(); setError(""); }
      catch (err) { setError(err.message); }
    }
    async function saveSkills(a) {
      try {
        await api("PUT", "/agents/" + enc(a.id) + "/skills", parseSkills(skills[a.id] ?? skillsText(a.skills)));
        setSkills({ ...skills, [a.id]: undefined }); refresh(); setError("");
      } catch (err) { setError(err.message); }
    }
    return html`<section class="card wide" aria-labelledby="agents-h"><h2 id="agents-h">${t("calls.agents")}</h2>
      <div class="row"><label class="inline" for="force-reason">${t("pause.reason")}</label>
        <select id="force-reason" value=${reason} onChange=${(e) => setReason(e.target.value)}>
          ${REASONS.map((r) => html`<option value=${r}>${t("reason." + r)}</option>`)}</select></div>
      <div class="scroll"><table id="agents"><thead><tr><th>${t("wallboard.agent")}</th><th>${t("state")}</th>
        <th>${t("time_in_state")}</th><th></th><th>${t("calls.skills")}</th></tr></thead>
      <tbody>${agents.map((a) => {
        const out = a.state === "logged_out";
        return html`<tr data-agent=${a.id} class=${a.pause_overdue ? "over" : ""}>
          <td>${a.name || a.id}</td>
          <td class="agent-state">${t("state." + a.state)}${a.pause_reason ? " · " + t("reason." + a.pause_reason) : ""}</td>
          <td>${duration(a.state_seconds + (now - since) / 1000)}</td>
          <td><button type="button" class="force-ready" disabled=${out || a.state === "available"}
                onClick=${() => act(a.id, "ready")}>${t("wallboard.force_ready")}</button>
            <button type="button" class="force-pause" disabled=${out || a.state === "paused"}
                onClick=${() => act(a.id, "pause", { reason })}>${t("wallboard.force_pause")}</button>
            <button type="button" class="force-logout" disabled=${out}
                onClick=${() => act(a.id, "logout")}>${t("calls.force_logout")}</button></td>
          <td><div class="row"><input type="text" class="skills short" aria-label=${t("calls.skills") + " " + a.id}
                title=${t("calls.skills.hint")} maxlength="2000" value=${skills[a.id] ?? skillsText(a.skills)}
                onInput=${(e) => setSkills({ ...skills, [a.id]: e.target.value })}
                onKeyDown=${(e) => { if (e.key === "Enter") saveSkills(a); }} />
            <button type="button" class="skills-save" onClick=${() => saveSkills(a)}>${t("calls.skills.save")}</button></div></td>
        </tr>`;
      })}</tbody></table></div>
    </section>`;
  }

  function App() {
    const [calls, setCalls] = useState([]);
    const [agents, setAgents] = useState([]);
    const [since, setSince] = useState(Date.now());     // when talk_seconds and state_seconds were read
    const [error, setError] = useState("");
    const mon = useMonitor(setError);

    async function refresh() {
      try {
        const [c, a] = await Promise.all([api("GET", "/calls"), api("GET", "/agents")]);
        // a call of another worker comes with held null: keep what the events said
        setCalls((old) => c.calls.map((n) => (n.held !== null ? n
          : { ...n, held: Boolean((old.find((o) => o.call_id === n.call_id) || {}).held) })));
        // a supervisor of some queues: the agents of those
        setAgents(c.queues.length ? a.agents.filter((ag) => c.queues.some((q) => q in (ag.queues || {}))) : a.agents);
        setSince(Date.now());
      } catch (err) { setError(err.message); }
    }
    const now = useLive(refresh, ["agent.state", "agent.skills", "call.answered", "call.ended", "call.transferred",
                                  "call.held", "call.unheld"], (ev) => {
      if (ev.type === "call.held" || ev.type === "call.unheld") {     // known at once, before the refresh
        setCalls((cs) => cs.map((c) => (c.call_id === ev.call_id ? { ...c, held: ev.type === "call.held" } : c)));
      }
    });

    return html`<${Header} title=${t("page.calls")} />
      <main>
        <${Calls} calls=${calls} since=${since} now=${now} mon=${mon} />
        ${error && html`<p class="error wide" role="alert" id="calls-error">${t("error")}: ${error}</p>`}
        <${Agents} agents=${agents} since=${since} now=${now} refresh=${refresh} setError=${setError} />
      </main>`;
  }
  mount(App);
})();
