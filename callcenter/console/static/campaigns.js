// The campaign manager's page: each campaign's state and live figures, start / pause / stop, and a list
// upload with a progress bar and its per-row report (rejected rows downloadable as CSV); do-not-call numbers
// added, removed and uploaded; each campaign's per-contact results as a CSV download; its lists reset,
// recycled or deleted.
(function () {
  "use strict";
  const { html, useState, useEffect, t, api, Header, mount } = window.CC;

  function csv(rows) {
    const cell = (v) => '"' + String(v === undefined || v === null ? "" : v).replace(/"/g, '""') + '"';
    return ["line,reason", ...rows.map((r) => cell(r.line) + "," + cell(r.reason))].join("\n") + "\n";
  }

  function Upload({ campaign, onDone }) {
    const [progress, setProgress] = useState(null);   // 0..100 while sending, then "processing"
    const [report, setReport] = useState(null);
    const [error, setError] = useState("");
    function send(e) {
      e.preventDefault();
      const file = e.target.list.files[0];
      if (!file) return;
      setReport(null); setError(""); setProgress(0);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/campaigns/" + encodeURIComponent(campaign) + "/lists");
      xhr.setRequestHeader("Content-Type", "text/csv");
      xhr.upload.onprogress = (ev) => { if (ev.lengthComputable) setProgress(Math.round((100 * ev.loaded) / ev.total)); };
      xhr.upload.onload = () => setProgress(100);
      xhr.onload = () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
        if (xhr.status === 201) { setReport(body); onDone(); } else setError((body && body.error) || xhr.statusText);
      };
      xhr.onerror = () => setError(t("error"));
      xhr.send(file);
    }
    const rejected = report ? report.rejected : [];
    const download = report && rejected.length
      ? URL.createObjectURL(new Blob([csv(rejected)], { type: "text/csv" })) : null;
    return html`<form id="upload-form" onSubmit=${send}>
        <label for="list-file">${t("campaign.upload")}</label>
        <div class="row"><input type="file" id="list-file" name="list" accept=".csv,text/csv" />
          <button type="submit" class="primary" id="upload-send">${t("campaign.upload.send")}</button></div>
        ${progress !== null && html`<div class="row"><progress id="upload-progress" max="100" value=${progress}>
          ${progress} %</progress><span id="upload-percent">${progress} %</span></div>`}
        ${error && html`<p class="error" role="alert" id="upload-error">${error}</p>`}
        ${report && html`<div id="upload-report" role="status">
          <p><span id="report-rows">${report.rows}</span> ${t("campaign.rows")} ·
            <span id="report-accepted">${report.accepted}</span> ${t("campaign.accepted")} ·
            <span id="report-merged">${report.merged_existing}</span> ${t("campaign.merged")} ·
            <span id="report-duplicates">${report.duplicates_in_file.length}</span> ${t("campaign.duplicates")} ·
            <span id="report-rejected">${report.rejected_count}</span> ${t("campaign.rejected")}</p>
          ${rejected.length > 0 && html`<table id="rejected"><thead><tr><th>${t("campaign.line")}</th>
              <th>${t("campaign.reason")}</th></tr></thead>
            <tbody>${rejected.map((r) => html`<tr><td>${r.line}</td><td>${r.reason}</td></tr>`)}</tbody></table>
            <p><a id="rejected-csv" href=${download} download=${campaign + "-rejected.csv"}>
              ${t("campaign.rejected.csv")}</a></p>`}
        </div>`}
      </form>`;
  }

  // The campaign's uploaded lists (GET /campaigns/{id}/lists): reset (every contact dialed again from its first
  // attempt), recycle (those that ran out of attempts) or delete one, delete asking to confirm.
  function Lists({ campaign, version, onChange }) {
    const [lists, setLists] = useState([]);
    const [confirm, setConfirm] = useState("");
    const [status, setStatus] = useState(null);     // {ok, text}
    const base = "/campaigns/" + encodeURIComponent(campaign) + "/lists";
    async function load() {
      try { setLists((await api("GET", base)).lists); } catch (err) { setStatus({ ok: false, text: err.message }); }
    }
    useEffect(() => { load(); }, [campaign, version]);
    async function act(listId, op) {
      setConfirm("");
      try {
        const path = base + "/" + encodeURIComponent(listId);
        const r = op === "delete" ? await api("DELETE", path, {}) : await api("POST", path + "/" + op, {});
        setStatus({ ok: true, text: t("list." + op + ".done") + ": " + r.changed
          + (r.leased ? " · " + r.leased + " " + t("list.leased") : "") });
        load(); onChange();
      } catch (err) { setStatus({ ok: false, text: err.message }); }
    }
    return html`<div id="lists">${lists.length > 0 && html`<table><thead><tr><th>${t("list")}</th>
        <th>${t("list.uploaded")}</th><th>${t("campaign.rows")}</th><th>${t("campaign.accepted")}</th><th></th></tr></thead>
      <tbody>${lists.map((l) => html`<tr data-list=${l.list_id}><td>${l.list_id}</td>
        <td>${new Date(l.uploaded_at * 1000).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" })}</td>
        <td>${l.rows}</td><td>${l.accepted}</td>
        <td>${["reset", "recycle"].map((op) => html`<button type="button" class=${"list-" + op}
            onClick=${() => act(l.list_id, op)}>${t("list." + op)}</button> `)}
          ${confirm === l.list_id
            ? html`<button type="button" class="danger list-delete-confirm" onClick=${() => act(l.list_id, "delete")}>
                ${t("list.delete.confirm")}</button>`
            : html`<button type="button" class="list-delete" onClick=${() => setConfirm(l.list_id)}>
                ${t("list.delete")}</button>`}</td></tr>`)}</tbody></table>`}
      ${status && html`<p class=${status.ok ? "ok" : "error"} role="status" id="list-status">${status.text}</p>`}
    </div>`;
  }

  // Do not call: one number added to or removed from the global list or a campaign's (POST /dnc, DELETE
  // /dnc/{number}), or a CSV file of numbers added (POST /dnc/lists) with its per-row report.
  function Dnc({ campaigns }) {
    const [number, setNumber] = useState("");
    const [scope, setScope] = useState("");
    const [status, setStatus] = useState(null);     // {ok, text}
    const [report, setReport] = useState(null);
    const query = () => (scope ? "?campaign=" + encodeURIComponent(scope) : "");
    async function change(add) {
      try {
        const r = add ? await api("POST", "/dnc", scope ? { number, campaign: scope } : { number })
          : await api("DELETE", "/dnc/" + encodeURIComponent(number) + query(), {});
        setStatus({ ok: true, text: t(add ? "dnc.added" : "dnc.removed") + " " + r.number });
      } catch (err) { setStatus({ ok: false, text: err.message }); }
    }
    async function upload(e) {
      e.preventDefault();
      const file = e.target.dncfile.files[0];
      if (!file) return;
      setReport(null);
      const r = await fetch("/dnc/lists" + query(), { method: "POST", credentials: "same-origin", body: file,
        headers: { "Content-Type": "text/csv", Accept: "application/json" } });
      const body = await r.json().catch(() => null);
      if (r.status === 201) { setReport(body); setStatus(null); }
      else setStatus({ ok: false, text: (body && body.error) || r.statusText });
    }
    return html`<section class="card wide" aria-labelledby="dnc-h"><h2 id="dnc-h">${t("dnc")}</h2>
      <form class="row" id="dnc-form" onSubmit=${(e) => { e.preventDefault(); change(true); }}>
        <label class="inline" for="dnc-number">${t("dnc.number")}</label>
        <input type="text" id="dnc-number" class="short" inputmode="tel" maxlength="32" required value=${number}
          onInput=${(e) => setNumber(e.target.value)} />
        <label class="inline" for="dnc-scope">${t("dnc.scope")}</label>
        <select id="dnc-scope" value=${scope} onChange=${(e) => setScope(e.target.value)}>
          <option value="">${t("dnc.all")}</option>
          ${campaigns.map((c) => html`<option value=${c.id}>${c.name}</option>`)}</select>
        <button type="submit" class="primary" id="dnc-add">${t("dnc.add")}</button>
        <button type="button" id="dnc-remove" onClick=${() => change(false)}>${t("dnc.remove")}</button>
      </form>
      <form id="dnc-upload-form" onSubmit=${upload}>
        <label for="dnc-file">${t("dnc.upload")}</label>
        <div class="row"><input type="file" id="dnc-file" name="dncfile" accept=".csv,text/csv" />
          <button type="submit" id="dnc-upload-send">${t("dnc.upload.send")}</button></div>
      </form>
      ${status && html`<p class=${status.ok ? "ok" : "error"} role="status" id="dnc-status">${status.text}</p>`}
      ${report && html`<div id="dnc-report" role="status"><p><span id="dnc-rows">${report.rows}</span>
          ${t("campaign.rows")} · <span id="dnc-new">${report.added}</span> ${t("dnc.new")} ·
          <span id="dnc-already">${report.already}</span> ${t("dnc.already")} ·
          <span id="dnc-rejected">${report.rejected_count}</span> ${t("campaign.rejected")}</p>
        ${report.rejected.length > 0 && html`<table><thead><tr><th>${t("campaign.line")}</th>
            <th>${t("campaign.reason")}</th></tr></thead>
          <tbody>${report.rejected.map((r) => html`<tr><td>${r.line}</td><td>${r.reason}</td></tr>`)}</tbody></table>`}
      </div>`}
    </section>`;
  }

  function App() {
    const [campaigns, setCampaigns] = useState([]);
    const [stats, setStats] = useState({});
    const [chosen, setChosen] = useState("");
    const [uploads, setUploads] = useState(0);      // lists uploaded from this page: the lists' table reloads
    const [error, setError] = useState("");

    async function refresh() {
      try {
        const list = (await api("GET", "/campaigns")).campaigns;
        setCampaigns(list);
        const figures = {};
        for (const c of list) figures[c.id] = await api("GET", "/campaigns/" + encodeURIComponent(c.id) + "/stats");
        setStats(figures);
        setError("");
      } catch (err) { setError(err.message); }
    }
    useEffect(() => { refresh(); const poll = setInterval(refresh, 5000); return () => clearInterval(poll); }, []);

    async function act(id, what) {
      try { await api("POST", "/campaigns/" + encodeURIComponent(id) + "/" + what, {}); refresh(); }
      catch (err) { setError(err.message); }
    }
    const figure = (c, key) => { const s = stats[c.id] || {}; return s[key] !== undefined ? s[key] : "–"; };
    const pct = (x) => (typeof x === "number" ? (100 * x).toFixed(1) + " %" : "–");
    const abandon = (c) => {
      const a = stats[c.id] && stats[c.id].abandonment && stats[c.id].abandonment["24h"];
      return a ? pct(a.rate) + " / " + pct(a.limit) : "–";
    };
    const current = chosen || (campaigns[0] && campaigns[0].id) || "";
    return html`<${Header} title=${t("page.campaigns")} />
      <main>
        <section class="card wide" aria-labelledby="c-h"><h2 id="c-h">${t("page.campaigns")}</h2>
          <table id="campaigns"><thead><tr><th>${t("campaign")}</th><th>${t("state")}</th>
            <th>${t("campaign.pending")}</th><th>${t("campaign.dialed")}</th><th>${t("campaign.abandon")}</th>
            <th></th></tr></thead>
          <tbody>${campaigns.map((c) => html`<tr data-campaign=${c.id}>
            <td>${c.name} <span class="muted">(${c.id})</span></td><td class="campaign-state">${c.state}</td>
            <td class="pending">${figure(c, "pending")}</td><td>${figure(c, "dials")}</td><td>${abandon(c)}</td>
            <td>${["start", "pause", "stop"].map((w) => html`<button type="button" class=${"campaign-" + w}
                onClick=${() => act(c.id, w)}>${t("campaign." + w)}</button> `)}
              <a class="campaign-results" href=${"/campaigns/" + encodeURIComponent(c.id) + "/results"}
                download=${c.id + "-results.csv"}>${t("campaign.results")}</a></td></tr>`)}</tbody></table>
        </section>
        <section class="card wide" aria-labelledby="u-h"><h2 id="u-h">${t("campaign.list")}</h2>
          <label for="upload-campaign">${t("campaign")}</label>
          <select id="upload-campaign" value=${current} onChange=${(e) => setChosen(e.target.value)}>
            ${campaigns.map((c) => html`<option value=${c.id}>${c.name}</option>`)}</select>
          ${current && html`<${Upload} campaign=${current} onDone=${() => { refresh(); setUploads(uploads + 1); }} />
            <${Lists} campaign=${current} version=${uploads} onChange=${refresh} />`}
        </section>
        <${Dnc} campaigns=${campaigns} />
        ${error && html`<p class="error" role="alert">${t("error")}: ${error}</p>`}
      </main>`;
  }
  mount(App);
})();
