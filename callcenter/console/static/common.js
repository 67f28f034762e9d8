// What every console page shares: its boot data, words, the API, the header, the event stream.
(function () {
  "use strict";
  const boot = JSON.parse(document.getElementById("cc-boot").textContent);
  const { html, render, useState, useEffect, useRef } = window.htmPreact;
  const t = (key) => (key in boot.t ? boot.t[key] : key);

  async function api(method, path, body) {
    const opts = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch(path, opts);
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.status === 401 && boot.page !== "login") location.reload();   // the session ended: sign in again
    if (!resp.ok) {
      const err = new Error((data && data.error) || resp.statusText);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  function setLanguage(lang) {
    document.cookie = "cc_lang=" + lang + "; Path=/; Max-Age=31536000; SameSite=Strict";
    location.reload();
  }

  async function signOut() {
    try { await api("POST", "/auth/logout", {}); } finally { location.assign("/console/login"); }
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const two = (n) => String(n).padStart(2, "0");
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + ":" + two(m) : String(m)) + ":" + two(s % 60);
  }

  function Header({ title }) {
    return html`<header class="bar">
      <h1>${title}</h1>
      ${boot.user && html`<a href="/console" id="nav-home">${t("home")}</a>`}
      <label class="inline" for="lang">${t("language")}</label>
      <select id="lang" value=${boot.lang} onChange=${(e) => setLanguage(e.target.value)}>
        <option value="en">English</option><option value="vi">Tiếng Việt</option>
      </select>
      ${boot.user && html`<span id="who">${boot.user.user}</span>
        <button type="button" id="signout" onClick=${signOut}>${t("signout")}</button>`}
    </header>`;
  }

  // The worker's event stream (GET /events, Server-Sent Events), when it serves one: onEvent(event) for
  // each message of the given types; the browser reconnects by itself.
  function events(types, onEvent) {
    if (!boot.events || !window.EventSource) return null;
    const source = new EventSource("/events");
    for (const type of types) {
      source.addEventListener(type, (msg) => {
        try { onEvent(JSON.parse(msg.data)); } catch (e) { console.warn("bad event", e); }
      });
    }
    return source;
  }

  // A page kept live: refresh() at once, again soon after each burst of events of these types (onEvent(event)
  // first, for what an event says at once) and every 10 s (2 s without an event stream) in case one was
  // missed; returns the time now, a second at a time, for the clocks that count up between reads.
  function useLive(refresh, types, onEvent) {
    const [now, setNow] = useState(Date.now());
    useEffect(() => {
      const every = boot.events ? 10 : 2;
      let pending = null, ticks = 0;
      const soon = () => { if (!pending) pending = setTimeout(() => { pending = null; refresh(); }, 150); };
      refresh();
      const clock = setInterval(() => { setNow(Date.now()); if (++ticks % every === 0) refresh(); }, 1000);
      const source = events(types, (ev) => { if (onEvent) onEvent(ev); soon(); });
      return () => { clearInterval(clock); clearTimeout(pending); if (source) source.close(); };
    }, []);
    return now;
  }

  function mount(App) {
    render(html`<${App} />`, document.getElementById("app"));
  }

  window.CC = { boot, t, api, html, useState, useEffect, useRef, Header, duration, events, useLive, mount, signOut };
})();
