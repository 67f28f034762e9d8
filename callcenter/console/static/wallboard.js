// The supervisor wallboard: each queue's waiting callers and longest wait (highlighted past the queue's service
// level seconds), its agents by state, service level today against the queue's target (highlighted below it) and
// abandon rate; the agent grid (state, time in state, pause overdue highlighted, the caller — masked — and queue
// of each agent on a call) with force ready / pause / log out. Live from the event stream, polled without it.
(function () {
  "use strict";
  const { html, useState, t, api, boot, Header, duration, useLive, mount } = window.CC;
  const roles = new Set(boot.user ? boot.user.roles : []);
  const supervises = roles.has("supervisor") || roles.has("admin");
  const BY_STATE = ["available", "on_call", "wrap_up", "paused"];

  const percent = (part, whole) => (whole ? Math.round((100 * part) / whole) + " %" : "–");

  function Queue({ q, waited }) {
    const below = q.service_level < q.sl_target;
    const late = q.waiting > 0 && waited > q.sl_seconds;
    const states = q.agents_by_state || {};
    return html`<tr data-queue=${q.queue}>
      <td>${q.queue}</td><td class="waiting">${q.waiting}</td>
      <td class=${"longest" + (late ? " over" : "")} title=${late ? t("wallboard.over_sl") : ""}>${duration(waited)}</td>
      ${BY_STATE.map((s) => html`<td class=${"n-" + s}>${states[s] || 0}</td>`)}
      <td class=${"sl" + (below ? " below" : "")} title=${below ? t("wallboard.below_target") : ""}>
        ${Math.round(100 * q.service_level)} % / ${Math.round(100 * q.sl_target)} %</td>
      <td class="abandon">${percent(q.abandoned_today, q.answered_today + q.abandoned_today)}</td></tr>`;
  }

  function Agent({ a, call, inState, force }) {
    const out = a.state === "logged_out";
    return html`<tr data-agent=${a.id} class=${a.pause_overdue ? "over" : ""}>
      <td>${a.name || a.id}</td>
      <td class="agent-state">${t("state." + a.state)}${a.pause_reason ? " · " + t("reason." + a.pause_reason) : ""}</td>
      <td>${duration(inState)}</td>
      <td class="caller">${call ? call.caller : ""}</td><td class="queue">${call ? call.queue : ""}</td>
      <td><button type="button" class="force-pause" disabled=${out || a.state === "paused"}
            onClick=${() => force(a.id, "pause")}>${t("wallboard.force_pause")}</button>
          <button type="button" class="force-ready" disabled=${out || a.state === "available"}
            onClick=${() => force(a.id, "ready")}>${t("wallboard.force_ready")}</button>
          <button type="button" class="force-logout" disabled=${out}
            onClick=${() => force(a.id, "logout")}>${t("wallboard.force_logout")}</button></td>
    </tr>`;
  }

  function App() {
    const [board, setBoard] = useState(null);
    const [agents, setAgents] = useState([]);
    const [calls, setCalls] = useState({});             // agent id -> its call (GET /calls: caller masked)
    const [readAt, setReadAt] = useState(Date.now());   // when the waits and the times in state were read
    const [error, setError] = useState("");

    async function refresh() {
      try {
        const [b, a, c] = await Promise.all([api("GET", "/wallboard"),
          ...(supervises ? [api("GET", "/agents"), api("GET", "/calls")] : [])]);
        setBoard(b);
        if (supervises) {
          setAgents(a.agents);
          setCalls(Object.fromEntries(c.calls.map((call) => [call.agent, call])));
        }
        setReadAt(Date.now());
        setError("");
      } catch (err) { setError(err.message); }
    }

    const now = useLive(refresh, ["agent.state", "queue.stats", "call.queued", "call.answered", "call.ended",
                                  "call.abandoned", "call.transferred"]);

    async function force(agentId, what) {
      try {
        await api("POST", "/agents/" + encodeURIComponent(agentId) + "/" + what, what === "pause" ? { reason: "other" } : {});
        refresh();
      } catch (err) { setError(err.message); }
    }

    const queues = board ? board.queues : [];
    const since = Math.max(0, (now - readAt) / 1000);
    return html`<${Header} title=${t("page.wallboard")} />
      <main>
        <section class="card wide" aria-labelledby="q-h"><h2 id="q-h">${t("wallboard.queue")}</h2>
          <div class="scroll"><table id="queues"><thead><tr><th>${t("wallboard.queue")}</th><th>${t("wallboard.waiting")}</th>
            <th>${t("wallboard.longest")}</th>${BY_STATE.map((s) => html`<th>${t("state." + s)}</th>`)}
            <th>${t("wallboard.sl")}</th><th>${t("wallboard.abandoned")}</th></tr></thead>
          <tbody>${queues.map((q) => html`<${Queue} q=${q}
            waited=${q.waiting ? (q.oldest_wait_seconds || 0) + since : 0} />`)}</tbody></table></div>
        </section>
        ${supervises && html`<section class="card wide" aria-labelledby="a-h"><h2 id="a-h">${t("wallboard.agents")}</h2>
          <div class="scroll"><table id="agents"><thead><tr><th>${t("wallboard.agent")}</th><th>${t("state")}</th>
            <th>${t("time_in_state")}</th><th>${t("calls.caller")}</th><th>${t("wallboard.queue")}</th><th></th></tr></thead>
          <tbody>${agents.map((a) => html`<${Agent} a=${a} call=${a.state === "on_call" ? calls[a.id] : null}
            inState=${a.state_seconds + since} force=${force} />`)}</tbody></table></div></section>`}
        ${error && html`<p class="error" role="alert">${t("error")}: ${error}</p>`}
      </main>`;
  }
  mount(App);
})();
