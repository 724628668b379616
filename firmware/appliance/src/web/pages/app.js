// cloakroom local page: pairing, admin and the phone join page. No framework.
"use strict";
let csrf = null;
let timer = null;
// Whether the test tone applies now (the room is idle) and whether it plays.
let roomIdle = true, tonePlaying = false;
const $ = (id) => document.getElementById(id);
// Text set only when it changed: the status line is a live region, read out on change, not every 3 s.
const setText = (el, text) => { if (el.textContent !== text) el.textContent = text; };
// The session each End button ends (the list is redrawn on every refresh).
const sessionOfButton = new WeakMap();

async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") { headers["content-type"] = "application/json"; if (csrf) headers["x-csrf-token"] = csrf; }
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.error && data.error.message) || ("HTTP " + res.status));
    err.status = res.status; err.field = data && data.error && data.error.field;
    throw err;
  }
  return data;
}

function showStatus(s) {
  $("room-name").textContent = s.room_name || "";
  const state = $("state");
  setText(state, s.state.replace("_", " "));
  state.className = "badge" + (s.state === "in_meeting" ? " good" : s.state === "error" ? " bad" : "");
  const enc = $("encrypted");
  setText(enc, s.encryption.encrypted ? "encrypted" : (s.state === "in_meeting" ? "NOT encrypted" : ""));
  enc.className = "badge" + (s.encryption.encrypted ? " good" : s.state === "in_meeting" ? " bad" : "");
  $("meeting").textContent = s.meeting || "—";
  if ($("verification")) $("verification").textContent = s.encryption.verification || "—";
  $("mute").textContent = s.muted ? "Unmute" : "Mute";
  $("mute").dataset.muted = s.muted ? "1" : "";
  // Leave and Mute apply to a meeting (or one being joined or retried), not to an idle room.
  $("leave").disabled = s.state === "idle";
  $("mute").disabled = s.state === "idle";
  // The speaker plays the meeting: the test tone is for an idle room (or one between retries).
  roomIdle = s.state === "idle" || s.state === "error";
  if ($("tone")) $("tone").disabled = !roomIdle || tonePlaying;
  if ($("participants")) showParticipants(s);
  if ($("media")) {
    const m = s.media;
    $("media").textContent = `send ${m.send_bitrate_kbps} kbit/s, receive ${m.receive_bitrate_kbps} kbit/s, loss ${Number(m.packet_loss_percent).toFixed(1)} %; `
      + `frames sent ${m.frames_sent}, shown ${m.frames_received}` + (m.decrypt_failures ? `, ${m.decrypt_failures} did not open (wrong key?)` : "");
  }
  if ($("fingerprint")) $("fingerprint").textContent = s.fingerprint || "—";
  if ($("room-error")) $("room-error").textContent = s.error ? (s.error + (s.retry_in_ms != null ? ` (retrying in ${Math.ceil(s.retry_in_ms / 1000)} s)` : "")) : "";
}

async function refresh(admin) {
  try {
    showStatus(await api("GET", "/api/status"));
    if (admin) {
      $("logs").textContent = (await api("GET", "/api/logs")).map((l) => `${new Date(l.unix_ms).toLocaleTimeString()} ${l.level} ${l.message}`).join("\n");
      showDevices(await api("GET", "/api/devices"));
      showSessions(await api("GET", "/api/sessions"));
      showInfo(await api("GET", "/api/info"));
    }
  } catch (e) {
    if (e.status !== 401) return;
    if (admin) { location.reload(); return; }
    // A phone's session ends with the meeting it started, after 15 idle minutes, or by the admin.
    clearInterval(timer);
    $("guest").hidden = true; $("expired").hidden = false;
    $("scan-error").textContent = "This phone's session has ended (its meeting ended, it was idle, or the room's admin ended it). Scan the code on the room screen again.";
  }
}

// The device report as a list.
function showDevices(d) {
  const cams = d.cameras || [], mics = d.microphones || [], spk = d.speakers || [];
  const item = (text) => { const li = document.createElement("li"); li.textContent = text; return li; };
  const sizes = (c) => (c.formats || []).map((f) => `${f.fourcc} ${(f.resolutions || []).slice(0, 4).map((r) => `${r.width}x${r.height}`).join(" ")}`).join("; ");
  const codecs = (list) => (list || []).map((e) => `${e.codec} (${e.element}${e.hardware ? ", hardware" : ""})`).join(", ") || "none";
  $("devices").replaceChildren(
    ...(cams.length ? cams.map((c) => item(`Camera: ${c.name} — ${c.path}, ${sizes(c)}`)) : [item("Camera: none found")]),
    ...(mics.length ? mics.map((m) => item(`Microphone: ${m.name} — ${m.id}`)) : [item("Microphone: none found")]),
    ...(spk.length ? spk.map((m) => item(`Speaker: ${m.name} — ${m.id}`)) : [item("Speaker: none found")]),
    item(`Encoders: ${codecs(d.encoders)}`), item(`Decoders: ${codecs(d.decoders)}`),
    ...(d.notes || []).map((n) => item(`Note: ${n}`)));
}

// Who holds a session, with a button to end each (but this browser's own).
// A keyboard user's focus stays on the same session's button across redraws
// (or the next one when that session is gone).
function showSessions(list) {
  const ul = $("sessions");
  const buttons = () => [...ul.querySelectorAll("button")];
  const had = ul.contains(document.activeElement) ? document.activeElement : null;
  const hadId = had && sessionOfButton.get(had), hadIndex = had ? buttons().indexOf(had) : -1;
  const ago = (s) => s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  ul.replaceChildren(...list.map((s) => {
    const li = document.createElement("li");
    const who = s.role === "admin" ? "Admin browser" : "Phone (guest)";
    li.textContent = `${who}${s.client ? " at " + s.client : ""}, opened ${ago(s.age_secs)} ago, last seen ${ago(s.idle_secs)} ago`
      + (s.meeting != null ? ", started the current meeting" : "") + (s.current ? " (this browser)" : "") + " ";
    if (!s.current) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = "End"; sessionOfButton.set(b, s.id); b.setAttribute("aria-label", `End the session of ${who}${s.client ? " at " + s.client : ""}`);
      b.addEventListener("click", async () => {
        $("sessions-error").textContent = "";
        try { await api("POST", "/api/sessions/revoke", { id: s.id }); } catch (e) { $("sessions-error").textContent = e.message; }
        refresh(true);
      });
      li.append(b);
    }
    return li;
  }));
  if (had) {
    const now = buttons();
    const again = now.find((b) => sessionOfButton.get(b) === hadId) || now[Math.min(hadIndex, now.length - 1)];
    (again || ul).focus();
  }
}

function wireMeeting(admin) {
  $("join-form").addEventListener("submit", async (ev) => {
    ev.preventDefault(); $("join-error").textContent = "";
    try { await api("POST", "/api/join", { link: $("link").value.trim() }); $("link").value = ""; }
    catch (e) { $("join-error").textContent = e.message; }
    refresh(admin);
  });
  $("leave").addEventListener("click", async () => { try { await api("POST", "/api/leave", {}); } catch (e) { $("join-error").textContent = e.message; } refresh(admin); });
  $("mute").addEventListener("click", async () => { try { await api("POST", "/api/mute", { muted: !$("mute").dataset.muted }); } catch (e) { $("join-error").textContent = e.message; } refresh(admin); });
  // Stops the room's countdown to a meeting whose QR code was held up to its camera (issue 17).
  $("qr-cancel").addEventListener("click", async () => { $("join-error").textContent = ""; try { await api("POST", "/api/qr/cancel", {}); } catch (e) { $("join-error").textContent = e.message; } });
  timer = setInterval(() => refresh(admin), 3000);
  refresh(admin);
}

// The settings' device choices: "auto", what `cloakroom devices` found, and "test" or "none" where the
// config takes them; a configured device that is not there now stays choosable, marked so. Filled once
// when the settings load (a redraw would throw away a choice not yet saved).
function fillDeviceChoices(d, s) {
  const fill = (name, options) => {
    const select = $("settings-form").elements[name];
    if (s[name] && !options.some(([value]) => value === s[name])) options.push([s[name], `${s[name]} (not found now)`]);
    select.replaceChildren(...options.map(([value, text]) => { const o = document.createElement("option"); o.value = value; o.textContent = text; return o; }));
  };
  fill("camera", [["auto", "Automatic: the first camera found"], ...(d.cameras || []).map((c) => [c.path, `${c.name} (${c.path})`]), ["test", "Test picture"]]);
  fill("microphone", [["auto", "Automatic: the first microphone found"], ...(d.microphones || []).map((m) => [m.id, `${m.name} (${m.id})`]), ["test", "Test tone"]]);
  fill("speaker", [["auto", "Automatic: the first speaker found"], ...(d.speakers || []).map((m) => [m.id, `${m.name} (${m.id})`]), ["none", "None: no sound"]]);
  const f = $("settings-form").elements;
  f.camera.addEventListener("change", () => fillModes(d));
  f.resolution.addEventListener("change", () => fillModes(d));
}

// The video modes the chosen camera offers (from `cloakroom devices`) as suggestions for the
// resolution and frame rate; the test picture is made at any size, so it gets the usual ones.
// Other sizes may still be typed: the picture is scaled to them.
function fillModes(d) {
  const f = $("settings-form").elements;
  const cams = d.cameras || [];
  const cam = f.camera.value === "auto" ? cams[0] : cams.find((c) => c.path === f.camera.value);
  const modes = new Map(); // "WxH" -> Set of frame rates
  if (cam) {
    for (const fmt of cam.formats || []) for (const r of fmt.resolutions || []) {
      const key = `${r.width}x${r.height}`;
      if (!modes.has(key)) modes.set(key, new Set());
      for (const fr of r.frame_rates || []) if (fr.denominator) modes.get(key).add(Math.round(fr.numerator / fr.denominator));
    }
  } else if (f.camera.value === "test") {
    for (const key of ["320x240", "640x360", "640x480", "1280x720", "1920x1080"]) modes.set(key, new Set([10, 15, 20, 25, 30]));
  }
  const byArea = [...modes.keys()].sort((a, b) => a.split("x").reduce((x, y) => x * y) - b.split("x").reduce((x, y) => x * y));
  const option = (value) => { const o = document.createElement("option"); o.value = value; return o; };
  $("resolution-list").replaceChildren(...byArea.map(option));
  const rates = [...(modes.get(f.resolution.value) || new Set([...modes.values()].flatMap((r) => [...r])))].filter((r) => r >= 1 && r <= 60).sort((a, b) => a - b);
  $("framerate-list").replaceChildren(...rates.map((r) => option(String(r))));
}

// Each participant with the meeting's encryption state (every frame of the meeting is sealed with its key),
// why the room exchanges no media with them if it does not, and verifying who they are (Jitsi's SAS):
// start it, compare the code with theirs (the room's screen shows it too), then say whether it matched.
function verifyLine(p, jitsi) {
  const v = p.verification;
  if (!v) return jitsi && !p.media_refused ? { text: "not verified", actions: [["Verify", "start", `Verify who ${p.display || "Guest"} is`]] } : null;
  if (v.state === "code") {
    const code = `${v.emoji.join(", ")} / ${v.decimals.join(" ")}`;
    return { text: `compare this code with theirs: ${code}`, actions: [["Codes match", "confirm", `The codes match for ${p.display || "Guest"}`], ["Codes differ", "reject", `The codes differ for ${p.display || "Guest"}`]] };
  }
  if (v.state === "verified") return { text: "verified" };
  if (v.state === "mismatch") return { text: "NOT verified: the codes differ" };
  return { text: `verification failed${v.reason ? ": " + v.reason : ""}`, actions: [["Try again", "start", `Verify who ${p.display || "Guest"} is`]] };
}

function showParticipants(s) {
  const state = s.encryption.encrypted ? "encrypted" : "NOT encrypted";
  const jitsi = /^(https|jitsi\+wss?):\/\//.test(s.meeting || "");
  const lines = s.participants.map((p) => {
    const v = verifyLine(p, jitsi);
    // Their own frames' state once any came (as their tile says), else the meeting's.
    const own = p.media_refused ? "no media (" + p.media_refused + ")" : (p.encryption || state);
    const text = `${p.display || "Guest"}: ${own}${v ? "; " + v.text : ""}`;
    return { p, v, text };
  });
  const text = lines.map((l) => l.text + (l.v && l.v.actions ? l.v.actions.map((a) => a[0]).join("") : "")).join("\n");
  if ($("participants").dataset.shown === text) return;
  const items = lines.map(({ p, v, text }) => {
    const li = document.createElement("li");
    li.textContent = v && v.actions ? text + " " : text;
    for (const [label, action, aria] of (v && v.actions) || []) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = label; b.setAttribute("aria-label", aria);
      b.addEventListener("click", async () => {
        $("verify-error").textContent = "";
        try { await api("POST", "/api/verify", { participant: p.id, action }); } catch (e) { $("verify-error").textContent = e.message; }
        refresh(true);
      });
      li.append(b);
    }
    return li;
  });
  if (!items.length) { const li = document.createElement("li"); li.textContent = "—"; items.push(li); }
  $("participants").replaceChildren(...items); $("participants").dataset.shown = text;
}

// Addresses, version and uptime.
function showInfo(i) {
  const ago = (s) => s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} days`;
  const items = (i.addresses || []).map((a) => { const li = document.createElement("li"); li.textContent = a.interface ? `${a.address} (${a.interface})` : a.address; return li; });
  if (!items.length) { const li = document.createElement("li"); li.textContent = "none found"; items.push(li); }
  const text = items.map((li) => li.textContent).join("\n");
  if ($("addresses").dataset.shown !== text) { $("addresses").replaceChildren(...items); $("addresses").dataset.shown = text; }
  setText($("version"), i.build ? `${i.version} (${i.build})` : i.version);
  setText($("uptime"), `software ${ago(i.daemon_uptime_secs)}` + (i.system_uptime_secs != null ? `, device ${ago(i.system_uptime_secs)}` : ""));
}

// The camera preview and the microphone meter, asked for only while the page is visible.
// Each waits for its answer before the next request, so a slow device never piles requests up.
function wireChecks() {
  const visible = () => document.visibilityState === "visible";
  let pictureUrl = null;
  const preview = async () => {
    if (!visible()) return;
    try {
      const res = await fetch("/api/preview.jpg", { credentials: "same-origin" });
      if (!res.ok) {
        let msg = "HTTP " + res.status;
        try { msg = (await res.json()).error.message; } catch (_) { /* not JSON */ }
        setText($("preview-error"), `No camera picture: ${msg}`);
        return;
      }
      const url = URL.createObjectURL(await res.blob());
      $("preview").src = url; $("preview").hidden = false;
      if (pictureUrl) URL.revokeObjectURL(pictureUrl);
      pictureUrl = url;
      setText($("preview-error"), "");
    } catch (e) { setText($("preview-error"), `No camera picture: ${e.message}`); }
  };
  const meter = async () => {
    if (!visible()) return;
    try {
      const l = await api("GET", "/api/mic-level");
      $("mic-meter").value = Math.max(-60, Math.min(0, l.peak_db));
      const text = `peak ${Math.round(l.peak_db)} dB, average ${Math.round(l.rms_db)} dB`;
      $("mic-meter").textContent = text; setText($("mic-db"), text);
      setText($("mic-error"), "");
    } catch (e) { setText($("mic-error"), `No microphone level: ${e.message}`); }
  };
  const every = (ms, f) => { const loop = async () => { const t = Date.now(); await f(); setTimeout(loop, Math.max(0, ms - (Date.now() - t))); }; loop(); };
  every(1000, preview);
  every(300, meter);
  $("tone").addEventListener("click", async () => {
    tonePlaying = true; $("tone").disabled = true; setText($("tone-result"), "");
    try { await api("POST", "/api/test-tone", {}); setText($("tone-result"), "Playing a 440 Hz tone for 2 seconds on the speaker."); }
    catch (e) { setText($("tone-result"), `No test tone: ${e.message}`); }
    setTimeout(() => { tonePlaying = false; $("tone").disabled = !roomIdle; }, 2000);
  });
  $("restart").addEventListener("click", async () => {
    if (!confirm("Restart the room's software? A meeting in progress ends; the room and this page are back in a few seconds.")) return;
    try { await api("POST", "/api/restart", {}); }
    catch (e) { setText($("restart-result"), `Not restarted: ${e.message}`); return; }
    clearInterval(timer);
    setText($("restart-result"), "Restarting… this page comes back by itself in a few seconds.");
    // Wait for the daemon to go, then for it to answer again.
    await new Promise((r) => setTimeout(r, 2000));
    for (let i = 0; i < 120; i++) {
      try { const r = await fetch("/api/session", { credentials: "same-origin" }); if (r.status === 200 || r.status === 401) { location.reload(); return; } } catch (_) { /* still down */ }
      await new Promise((r) => setTimeout(r, 1000));
    }
    setText($("restart-result"), "The room has not come back after 2 minutes; check its power and network, or the room screen.");
  });
}

async function loadSettings() {
  const [d, s] = await Promise.all([api("GET", "/api/devices"), api("GET", "/api/settings")]);
  fillDeviceChoices(d, s);
  const f = $("settings-form");
  for (const [k, v] of Object.entries(s)) {
    const el = f.elements[k]; if (!el) continue;
    if (el.type === "checkbox") el.checked = v; else el.value = v;
  }
  fillModes(d);
}

function wireSettings() {
  $("settings-form").addEventListener("submit", async (ev) => {
    ev.preventDefault(); $("settings-error").textContent = ""; $("settings-ok").textContent = "";
    const f = ev.target.elements;
    const body = { room_name: f.room_name.value, camera: f.camera.value, microphone: f.microphone.value, speaker: f.speaker.value,
      resolution: f.resolution.value, framerate: Number(f.framerate.value), codec: f.codec.value, require_key: f.require_key.checked };
    try { await api("PUT", "/api/settings", body); $("settings-ok").textContent = "Saved."; }
    catch (e) { $("settings-error").textContent = e.message; if (e.field && f[e.field]) f[e.field].focus(); }
  });
}

async function adminPage() {
  try {
    const s = await api("GET", "/api/session");
    if (s.role !== "admin") throw Object.assign(new Error("guest"), { status: 401 });
    csrf = s.csrf;
    $("admin").hidden = false;
    wireMeeting(true); wireSettings(); loadSettings(); wireChecks();
  } catch (_) {
    $("pair").hidden = false;
    $("pair-form").addEventListener("submit", async (ev) => {
      ev.preventDefault(); $("pair-error").textContent = "";
      const body = { code: $("code").value.trim() };
      if ($("password").value) body.password = $("password").value;
      try { await api("POST", "/api/pair", body); location.reload(); }
      catch (e) { $("pair-error").textContent = e.message; $("code").select(); }
    });
  }
}

async function joinPage() {
  const m = /^#t=([0-9a-f]{32})$/.exec(location.hash);
  if (m) {
    history.replaceState(null, "", "/join"); // the token is single use; keep it out of history
    try { const s = await api("POST", "/api/scan", { token: m[1] }); csrf = s.csrf; }
    catch (e) { $("expired").hidden = false; $("scan-error").textContent = e.message; return; }
  } else {
    try { csrf = (await api("GET", "/api/session")).csrf; }
    catch (_) { $("expired").hidden = false; return; }
  }
  $("guest").hidden = false;
  wireMeeting(false);
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.body.dataset.page === "join") joinPage(); else adminPage();
});
