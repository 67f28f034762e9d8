// The sign-in page: POST /auth/login (JSON), then the page asked for (this URL) or the console's home.
(function () {
  "use strict";
  const { html, useState, t, api, Header, mount } = window.CC;

  function Login() {
    const [error, setError] = useState("");
    const [busy, setBusy] = useState(false);
    async function submit(e) {
      e.preventDefault();
      const form = e.target;
      setBusy(true);
      try {
        await api("POST", "/auth/login", { user: form.user.value, password: form.password.value });
        if (location.pathname === "/console/login") location.assign("/console");
        else location.reload();
      } catch (err) {
        setError(err.status === 429 ? t("login.throttled") : t("login.failed"));
        setBusy(false);
      }
    }
    return html`<${Header} title=${t("app")} />
      <main class="narrow"><section class="card">
        <h2>${t("login.title")}</h2>
        <form id="login-form" onSubmit=${submit}>
          <label for="user">${t("login.user")}</label>
          <input type="text" id="user" name="user" autocomplete="username" required autofocus />
          <label for="password">${t("login.password")}</label>
          <input type="password" id="password" name="password" autocomplete="current-password" required />
          <div class="row"><button type="submit" class="primary" id="login-submit" disabled=${busy}>
            ${t("login.submit")}</button></div>
          ${error && html`<p class="error" role="alert" id="login-error">${error}</p>`}
        </form>
      </section></main>`;
  }
  mount(Login);
})();
