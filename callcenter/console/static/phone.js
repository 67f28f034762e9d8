// The agent desktop's browser phone (JsSIP, web/assets.json): registers with the agent's own SIP credentials
// (GET /agents/{id}/phone: the edge's WebSocket, the SIP URI, HA1 and realm; never a password) at the encrypted
// edge over WSS, rings on an incoming INVITE (an orange card and a 425 Hz ring), answers by the button or by
// itself when the agent chose so, shows the WebSocket's and the registration's state and the microphone's
// level, and after a dropped connection reconnects and registers again (JsSIP's connection recovery). It never
// touches the agent's routing state: ready / paused stays as it was; an offer that finds no phone registered
// goes back to the queue for the next agent. Loaded by the agent page only when the worker has a `phone`
// section; shown only to the agent itself.
(function () {
  "use strict";
  const { boot, t, api } = window.CC;
  const me = boot.user;
  if (!window.JsSIP || !me || me.agent !== boot.agent || me.roles.indexOf("agent") < 0) return;

  const AUTO = "cc_phone_auto";
  const box = document.createElement("section");
  box.className = "card phone";
  box.id = "phone";
  box.setAttribute("aria-label", t("phone.title"));
  box.innerHTML = '<h2></h2><p><span id="phone-connection" role="status"></span> · ' +
    '<span id="phone-registration" role="status"></span></p>' +
    '<p id="phone-call" role="status" aria-live="assertive"></p>' +
    '<p><button type="button" id="phone-answer"></button> <button type="button" id="phone-hangup"></button></p>' +
    '<p><label><input type="checkbox" id="phone-auto"> <span></span></label></p>' +
    '<p><label for="phone-mic"></label> <meter id="phone-mic" min="0" max="1" value="0"></meter></p>';
  document.body.appendChild(box);
  const $ = (sel) => box.querySelector(sel);
  $("h2").textContent = t("phone.title");
  $("#phone-answer").textContent = t("phone.answer");
  $("#phone-hangup").textContent = t("phone.hangup");
  $("#phone-auto + span").textContent = t("phone.auto");
  $("label[for=phone-mic]").textContent = t("phone.mic");
  const auto = $("#phone-auto");
  auto.checked = localStorage.getItem(AUTO) === "1";
  auto.addEventListener("change", () => localStorage.setItem(AUTO, auto.checked ? "1" : "0"));

  // what the page shows, also as data- attributes (the tests read them)
  const state = { connection: "connecting", registration: "unregistered", call: "idle" };
  function show(key, value) {
    state[key] = value;
    box.dataset[key] = value;
    $("#phone-connection").textContent = t("phone." + state.connection);
    $("#phone-registration").textContent = t("phone." + state.registration);
    $("#phone-call").textContent = state.call === "idle" ? "" : t("phone." + state.call);
    $("#phone-answer").hidden = state.call !== "ringing";
    $("#phone-hangup").hidden = state.call === "idle";
  }
  show("call", "idle");

  const phone = window.ccPhone = { state, session: null, remote: null, ua: null };
  const speaker = new Audio();          // the caller's voice (Chromium decodes a remote track only while it plays)
  speaker.autoplay = true;
  let meter = null;

  function level(track) {               // the microphone's level: an analyser on what the phone sends
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 512;
    ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    const timer = setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const x of buf) sum += x * x;
      $("#phone-mic").value = Math.min(1, Math.sqrt(sum / buf.length) * 4);
    }, 200);
    return () => { clearInterval(timer); ctx.close(); $("#phone-mic").value = 0; };
  }

  function ringer() {                    // an audible ring while an offer waits: 425 Hz, 1 s on, 3 s off
    const ctx = new AudioContext();
    const osc = ctx.createOscillator(), gain = ctx.createGain();
    osc.frequency.value = 425;
    gain.gain.value = 0;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    const beat = () => {
      gain.gain.setValueAtTime(0.2, ctx.currentTime);
      gain.gain.setValueAtTime(0, ctx.currentTime + 1);
    };
    beat();
    const timer = setInterval(beat, 4000);
    return () => { clearInterval(timer); ctx.close(); };
  }

  function media(pc) {
    pc.addEventListener("track", (e) => {
      phone.remote = e.track;
      speaker.srcObject = e.streams[0] || new MediaStream([e.track]);
      speaker.play().catch(() => {});
    });
  }

  function answer() {
    const session = phone.session;
    if (!session || state.call !== "ringing") return;
    session.answer({ mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } });
  }

  function hangup() {
    if (phone.session) phone.session.terminate();
  }
  $("#phone-answer").addEventListener("click", answer);
  $("#phone-hangup").addEventListener("click", hangup);

  function incoming(session) {
    if (phone.session) {                // one call at a time: a second offer is refused (busy)
      session.terminate({ status_code: 486, reason_phrase: "Busy Here" });
      return;
    }
    phone.session = session;
    session.on("peerconnection", (e) => media(e.peerconnection));
    session.on("confirmed", () => {
      show("call", "talking");
      const sender = session.connection && session.connection.getSenders().find((s) => s.track);
      if (sender) meter = level(sender.track);
    });
    let ring = ringer();
    const quiet = () => { if (ring) { ring(); ring = null; } };
    session.on("accepted", quiet);
    const ended = () => {
      quiet();
      if (phone.session !== session) return;
      phone.session = null;
      phone.remote = null;
      speaker.srcObject = null;
      if (meter) { meter(); meter = null; }
      show("call", "idle");
    };
    session.on("ended", ended);
    session.on("failed", ended);
    show("call", "ringing");
    if (auto.checked) answer();
  }

  async function start() {
    let reg;
    try {
      reg = await api("GET", "/agents/" + encodeURIComponent(boot.agent) + "/phone");
    } catch (err) {
      show("connection", "unavailable");
      return;
    }
    const ua = phone.ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(reg.ws_url)],
      uri: reg.uri, authorization_user: reg.user, ha1: reg.ha1, realm: reg.realm,
      register: true, register_expires: 120, session_timers: false, user_agent: "callcenter browser phone",
      connection_recovery_min_interval: 1, connection_recovery_max_interval: 5,
    });
    ua.on("connecting", () => show("connection", "connecting"));
    ua.on("connected", () => show("connection", "connected"));
    ua.on("disconnected", () => { show("connection", "disconnected"); show("registration", "unregistered"); });
    ua.on("registered", () => show("registration", "registered"));
    ua.on("unregistered", () => show("registration", "unregistered"));
    ua.on("registrationFailed", () => show("registration", "failed"));
    ua.on("newRTCSession", (e) => { if (e.originator === "remote") incoming(e.session); });
    ua.start();
  }
  start();
})();
