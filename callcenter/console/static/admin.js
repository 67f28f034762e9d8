// The admin page: users and roles (create, edit, disable, reset the password), the routing rules edited in
// the page (the validator's file:line error shown at its line), and the audit log (paged, filtered).
(function () {
  "use strict";
  const { html, useState, useEffect, useRef, t, api, boot, Header, mount } = window.CC;
  const ROLES = boot.roles || [];
  const LINE = 19;          // px: the editor's line height (console.css .editor)
  const PAGE = 25;          // audit entries per page

  const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

  // -- users ----------------------------------------------------------------------------------------

  const EMPTY = { name: "", roles: [], agent: "", queues: "", sip_uri: "", password: "", disabled: false };

  function UserForm({ editing, onDone }) {
    const [form, setForm] = useState(EMPTY);
    const [error, setError] = useState("");
    useEffect(() => {
      setError("");
      setForm(editing ? { ...EMPTY, ...editing, agent: editing.agent || "", sip_uri: editing.sip_uri || "",
                          queues: (editing.queues || []).join(", "), password: "" } : EMPTY);
    }, [editing]);
    const field = (name) => (e) => setForm({ ...form, [name]: e.target.type === "checkbox" ? e.target.checked : e.target.value });
    const toggle = (role) => (e) => setForm({ ...form, roles: e.target.checked ? [...form.roles, role]
                                                                               : form.roles.filter((r) => r !== role) });
    async function submit(e) {
      e.preventDefault();
      const body = { roles: form.roles, agent: form.agent.trim() || null, queues: list(form.queues),
                     sip_uri: form.sip_uri.trim() };
      try {
        if (editing) {
          body.disabled = form.disabled;
          if (form.password) body.password = form.password;
          await api("PATCH", "/admin/users/" + encodeURIComponent(editing.name), body);
          onDone(t("admin.saved"));
        } else {
          await api("POST", "/admin/users", { ...body, name: form.name.trim(), password: form.password });
          onDone(t("admin.created"));
        }
        setForm(EMPTY);
      } catch (err) { setError(err.message); }
    }
    return html`<form id="user-form" onSubmit=${submit}>
      <h3>${editing ? t("admin.editing") + ": " + editing.name : t("admin.new")}</h3>
      ${!editing && html`<label for="u-name">${t("admin.user")}</label>
        <input type="text" id="u-name" required maxlength="64" value=${form.name} onInput=${field("name")} />`}
      <fieldset><legend>${t("admin.roles")}</legend>
        ${ROLES.map((r) => html`<label class="inline"><input type="checkbox" id=${"u-role-" + r}
          checked=${form.roles.includes(r)} onChange=${toggle(r)} /> ${t("role." + r)}</label>`)}</fieldset>
      <label for="u-agent">${t("admin.agent")}</label>
      <input type="text" id="u-agent" maxlength="64" value=${form.agent} onInput=${field("agent")} />
      <label for="u-queues">${t("admin.queues")}</label>
      <input type="text" id="u-queues" maxlength="2000" value=${form.queues} onInput=${field("queues")} />
      <label for="u-sip">${t("admin.sip_uri")}</label>
      <input type="text" id="u-sip" maxlength="256" value=${form.sip_uri} onInput=${field("sip_uri")} />
      <label for="u-password">${editing ? t("admin.new_password") : t("admin.password")}</label>
      <input type="password" id="u-password" autocomplete="new-password" required=${!editing} maxlength="256"
        value=${form.password} onInput=${field("password")} />
      ${editing && html`<label class="inline"><input type="checkbox" id="u-disabled" checked=${form.disabled}
        onChange=${field("disabled")} /> ${t("admin.disabled")}</label>`}
      <div class="row"><button type="submit" class="primary" id="u-submit">${editing ? t("admin.save") : t("admin.create")}</button>
        ${editing && html`<button type="button" id="u-cancel" onClick=${() => onDone("")}>${t("admin.cancel")}</button>`}</div>
      ${error && html`<p class="error" role="alert" id="user-error">${error}</p>`}
    </form>`;
  }

  function Users() {
    const [users, setUsers] = useState([]);
    const [editing, setEditing] = useState(null);
    const [note, setNote] = useState("");
    const [error, setError] = useState("");
    async function refresh() {
      try { setUsers((await api("GET", "/admin/users")).users); setError(""); } catch (err) { setError(err.message); }
    }
    useEffect(() => { refresh(); }, []);
    async function setDisabled(u, disabled) {
      try { await api("PATCH", "/admin/users/" + encodeURIComponent(u.name), { disabled }); refresh(); }
      catch (err) { setError(err.message); }
    }
    function done(message) { setEditing(null); setNote(message); refresh(); }
    return html`<section class="card wide" aria-labelledby="users-h"><h2 id="users-h">${t("admin.users")}</h2>
      <div class="split">
        <div class="scroll"><table id="users"><thead><tr><th>${t("admin.user")}</th><th>${t("admin.roles")}</th>
          <th>${t("admin.agent")}</th><th>${t("admin.queues.seen")}</th><th>${t("admin.state")}</th><th></th></tr></thead>
        <tbody>${users.map((u) => html`<tr data-user=${u.name} class=${u.disabled ? "muted" : ""}>
          <td>${u.name}</td><td class="roles">${u.roles.map((r) => t("role." + r)).join(", ")}</td>
          <td>${u.agent || ""}</td><td>${(u.queues || []).join(", ")}</td>
          <td class="account">${u.disabled ? t("admin.disabled") : t("admin.active")}</td>
          <td><button type="button" class="edit" onClick=${() => { setNote(""); setEditing(u); }}>${t("admin.edit")}</button>
            <button type="button" class="toggle" onClick=${() => setDisabled(u, !u.disabled)}>
              ${u.disabled ? t("admin.enable") : t("admin.disable")}</button></td></tr>`)}</tbody></table></div>
        <div><${UserForm} editing=${editing} onDone=${done} />
          ${note && html`<p class="ok" role="status" id="user-note">${note}</p>`}</div>
      </div>
      ${error && html`<p class="error" role="alert">${t("error")}: ${error}</p>`}
    </section>`;
  }

  // -- routing rules --------------------------------------------------------------------------------

  async function sendText(method, path, text) {
    const resp = await fetch(path, { method, credentials: "same-origin", body: text,
                                     headers: { Accept: "application/json", "Content-Type": "application/yaml" } });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    return { status: resp.status, data: data || {} };
  }

  function Rules({ onApplied }) {
    const [text, setText] = useState("");
    const [origin, setOrigin] = useState("");
    const [problems, setProblems] = useState([]);      // the validator's: {message, line, key}, in line order
    const [result, setResult] = useState("");
    const [scroll, setScroll] = useState(0);
    const area = useRef(null);

    async function load() {
      try {
        const r = await api("GET", "/admin/rules/text");
        setText(r.text); setOrigin(r.from); setProblems([]);
      } catch (err) { setProblems([{ message: err.message, line: null }]); }
    }
    useEffect(() => { load(); }, []);

    function goto(line) {                      // the caret on the line, and the line in view
      if (!line || !area.current) return;
      const lines = text.split("\n");
      const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
      area.current.scrollTop = Math.max(0, (line - 4) * LINE);
      area.current.setSelectionRange(start, start + (lines[line - 1] || "").length);
      area.current.focus();
    }
    function show(found) {
      setProblems(found); setResult("");
      goto(found[0].line);
    }
    const counts = (d) => `${d.queues.length} ${t("admin.rules.queues")}, ${d.agents} ${t("admin.rules.agents")}`;

    async function validate() {
      const r = await sendText("POST", "/admin/rules/validate", text);
      if (r.status !== 200) show([{ message: r.data.error || String(r.status), line: null }]);
      else if (r.data.valid) { setProblems([]); setResult(t("admin.valid") + ": " + counts(r.data)); }
      else show(r.data.errors);
    }
    async function apply() {
      const r = await sendText("PUT", "/admin/rules", text);
      if (r.status === 200) {
        setProblems([]); setResult(t("admin.applied") + ": " + counts(r.data)); onApplied();
      } else show([{ message: r.data.error || String(r.status), line: r.data.detail ? r.data.detail.line : null }]);
    }

    const count = text.split("\n").length;
    const bad = new Set(problems.map((p) => p.line).filter(Boolean));
    return html`<section class="card wide" aria-labelledby="rules-h"><h2 id="rules-h">${t("admin.rules")}</h2>
      <p class="muted" id="rules-origin">${origin && t(origin === "file" ? "admin.rules.file" : "admin.rules.applied")}</p>
      <div class="row"><button type="button" id="rules-validate" onClick=${validate}>${t("admin.validate")}</button>
        <button type="button" class="primary" id="rules-apply" onClick=${apply}>${t("admin.apply")}</button></div>
      ${problems.length > 0 && html`<ul class="error" role="alert" id="rules-errors">${problems.map((p) => html`
        <li data-line=${p.line || ""}>${p.line ? html`<button type="button" class="goto" onClick=${() => goto(p.line)}>
          ${t("admin.line")} ${p.line}</button> ` : ""}${p.message}</li>`)}</ul>`}
      ${result && html`<p class="ok" role="status" id="rules-result">${result}</p>`}
      <div class="editor">
        <div class="gutter" id="rules-lines" aria-hidden="true"><div style=${{ transform: `translateY(${-scroll}px)` }}>
          ${Array.from({ length: count }, (_, i) => html`<div class=${bad.has(i + 1) ? "bad" : ""}
            data-line=${i + 1}>${i + 1}</div>`)}</div></div>
        <div class="code">
          ${[...bad].map((line) => html`<div class="mark" data-line=${line}
            style=${{ top: `${(line - 1) * LINE - scroll + 6}px` }}></div>`)}
          <textarea id="rules-text" ref=${area} spellcheck="false" aria-label=${t("admin.rules")} wrap="off"
            value=${text} onInput=${(e) => { setText(e.target.value); setResult(""); }}
            onScroll=${(e) => setScroll(e.target.scrollTop)}></textarea></div>
      </div>
    </section>`;
  }

  // -- audit log ------------------------------------------------------------------------------------

  function Audit({ version }) {
    const [entries, setEntries] = useState([]);
    const [user, setUser] = useState("");
    const [action, setAction] = useState("");
    const [before, setBefore] = useState(null);      // the page starts before this entry id; null: the newest
    const [more, setMore] = useState(false);
    const [error, setError] = useState("");
    async function load(from) {
      const q = new URLSearchParams({ limit: String(PAGE + 1) });
      if (user.trim()) q.set("user", user.trim());
      if (action.trim()) q.set("action", action.trim());
      if (from !== null) q.set("before", from);
      try {
        const got = (await api("GET", "/admin/audit?" + q.toString())).entries;
        setEntries(got.slice(0, PAGE)); setMore(got.length > PAGE); setBefore(from); setError("");
      } catch (err) { setError(err.message); }
    }
    useEffect(() => { load(null); }, [version]);
    const older = () => load(entries[entries.length - 1].id);
    const when = (at) => new Date(at * 1000).toLocaleString(boot.lang);
    const target = (tg) => Object.entries(tg).map(([k, v]) => k + "=" + v).join(" ");
    return html`<section class="card wide" aria-labelledby="audit-h"><h2 id="audit-h">${t("admin.audit")}</h2>
      <form class="row" id="audit-form" onSubmit=${(e) => { e.preventDefault(); load(null); }}>
        <label class="inline" for="audit-user">${t("admin.user")}</label>
        <input type="text" id="audit-user" class="short" maxlength="64" value=${user} onInput=${(e) => setUser(e.target.value)} />
        <label class="inline" for="audit-action">${t("admin.audit.action")}</label>
        <input type="text" id="audit-action" class="short" maxlength="200" value=${action}
          onInput=${(e) => setAction(e.target.value)} />
        <button type="submit" id="audit-filter">${t("admin.audit.filter")}</button>
        <button type="button" id="audit-newest" disabled=${before === null} onClick=${() => load(null)}>${t("admin.audit.newest")}</button>
        <button type="button" id="audit-older" disabled=${!more} onClick=${older}>${t("admin.audit.older")}</button>
      </form>
      <div class="scroll"><table id="audit"><thead><tr><th>${t("admin.audit.when")}</th><th>${t("admin.user")}</th>
        <th>${t("admin.audit.action")}</th><th>${t("admin.audit.target")}</th><th>${t("admin.audit.status")}</th>
        <th>${t("admin.audit.address")}</th></tr></thead>
      <tbody>${entries.map((e) => html`<tr><td>${when(e.at)}</td><td class="a-user">${e.user}</td>
        <td class="a-action">${e.action}</td><td class="a-target">${target(e.target)}</td>
        <td class="a-status">${e.status}</td><td>${e.address}</td></tr>`)}</tbody></table></div>
      ${!entries.length && !error && html`<p class="muted">${t("admin.audit.none")}</p>`}
      ${error && html`<p class="error" role="alert">${t("error")}: ${error}</p>`}
    </section>`;
  }

  function App() {
    const [version, setVersion] = useState(0);      // the audit log reloads after an apply
    return html`<${Header} title=${t("page.admin")} />
      <main><${Users} /><${Rules} onApplied=${() => setVersion((v) => v + 1)} /><${Audit} version=${version} /></main>`;
  }
  mount(App);
})();
