// The supervisor wallboard: each queue's waiting callers and longest wait, the agent grid (state, time in
// state, pause overdue highlighted) with force ready / pause. Live from the event stream, polled without it.
(function () {
  "use strict";
  const { html, useState, useEffect, t, api, boot, Header, duration, events, mount } = window.CC;
  const roles = new Set(boot.user ? boot.user.roles : []);
  const supervises = roles.has("supervisor") || roles.has("admin");

  const percent = (part, whole) => (whole ? Math.round((100 * part) / whole) + " %" : "–");

  function App() {
    const [board, setBoard] = useState(null);
    const [agents, setAgents] = useState([]);
    const [since, setSince] = useState(Date.now());    // when the agents' state_seconds were read
    const [now, setNow] = useState(Date.now());
    const [error, setError] = useState("");

    async function refresh() {
      try {
        setBoard(await api("GET", "/wallboard"));
        if (supervises) { setAgents((await api("GET", "/agents")).agents); setSince(Date.now()); }
        setError("");
      } catch (err) { setError(err.message); }
    }

    useEffect(() => {
      refresh();
      const poll = setInterval(refresh, boot.events ? 10000 : 2000);
      const tick = setInterval(() => setNow(Date.now()), 1000);
      let pending = null;     // one refresh for a burst of events
      const source = events(["agent.state", "queue.stats", "call.queued", "call.answered", "call.ended",
                             "call.abandoned"], () => {
        if (!pending) pending = setTimeout(() => { pending = null; refresh(); }, 150);
      });
      return () => { clearInterval(poll); clearInterval(tick); if (source) source.close(); };
    }, []);

    async function force(agentId, what) {
      try {
        await api("POST", "/agents/" + encodeURIComponent(agentId) + "/" + what, what === "pause" ? { reason: "other" } : {});
        refresh();
      } catch (err) { setError(err.message); }
    }

    const queues = board ? board.queues : [];
    return html`<${Header} title=${t("page.wallboard")} />
      <main>
        <section class="card wide" aria-labelledby="q-h"><h2 id="q-h">${t("wallboard.queue")}</h2>
          <table id="queues"><thead><tr><th>${t("wallboard.queue")}</th><th>${t("wallboard.waiting")}</th>
            <th>${t("wallboard.longest")}</th><th>${t("wallboard.ready")}</th><th>${t("wallboard.sl")}</th>
            <th>${t("wallboard.abandoned")}</th></tr></thead>
          <tbody>${queues.map((q) => html`<tr data-queue=${q.queue}>
            <td>${q.queue}</td><td class="waiting">${q.waiting}</td>
            <td>${duration(q.oldest_wait_seconds || 0)}</td>
            <td>${(q.agents_by_state || {}).available || 0}</td>
            <td>${Math.round(100 * q.service_level)} %</td>
            <td>${percent(q.abandoned_today, q.answered_today + q.abandoned_today)}</td></tr>`)}</tbody></table>
        </section>
        ${supervises && html`<section class="card wide" aria-labelledby="a-h"><h2 id="a-h">${t("wallboard.agents")}</h2>
          <table id="agents"><thead><tr><th>${t("wallboard.agent")}</th><th>${t("state")}</th>
            <th>${t("time_in_state")}</th><th></th></tr></thead>
          <tbody>${agents.map((a) => html`<tr data-agent=${a.id} class=${a.pause_overdue ? "over" : ""}>
            <td>${a.name || a.id}</td>
            <td class="agent-state">${t("state." + a.state)}${a.pause_reason ? " · " + t("reason." + a.pause_reason) : ""}</td>
            <td>${duration(a.state_seconds + (now - since) / 1000)}</td>
            <td><button type="button" class="force-pause" disabled=${a.state === "logged_out" || a.state === "paused"}
                  onClick=${() => force(a.id, "pause")}>${t("wallboard.force_pause")}</button>
                <button type="button" class="force-ready" disabled=${a.state === "logged_out" || a.state === "available"}
                  onClick=${() => force(a.id, "ready")}>${t("wallboard.force_ready")}</button></td>
          </tr>`)}</tbody></table></section>`}
        ${error && html`<p class="error" role="alert">${t("error")}: ${error}</p>`}
      </main>`;
  }
  mount(App);
})();
