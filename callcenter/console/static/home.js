// Home: the pages this user's roles open.
(function () {
  "use strict";
  const { html, t, boot, Header, mount } = window.CC;

  function Home() {
    const roles = new Set(boot.user ? boot.user.roles : []);
    const links = [];
    if (boot.user && boot.user.agent) {
      links.push(html`<li><a id="link-agent" href=${"/console/agent/" + encodeURIComponent(boot.user.agent)}>
        ${t("page.agent")} (${boot.user.agent})</a></li>`);
    }
    if (roles.has("supervisor") || roles.has("campaign_manager") || roles.has("admin")) {
      links.push(html`<li><a id="link-wallboard" href="/console/wallboard">${t("page.wallboard")}</a></li>`);
    }
    if (roles.has("campaign_manager") || roles.has("admin")) {
      links.push(html`<li><a id="link-campaigns" href="/console/campaigns">${t("page.campaigns")}</a></li>`);
    }
    if (roles.has("supervisor") || roles.has("admin")) {
      links.push(html`<li><a id="link-calls" href="/console/calls">${t("page.calls")}</a></li>`);
    }
    if (roles.has("admin")) {
      links.push(html`<li><a id="link-admin" href="/console/admin">${t("page.admin")}</a></li>`);
    }
    return html`<${Header} title=${t("app")} />
      <main class="narrow"><section class="card"><h2>${t("home.pages")}</h2>
        <ul class="pages">${links}</ul></section></main>`;
  }
  mount(Home);
})();
