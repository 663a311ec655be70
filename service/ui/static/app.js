// The status console: logs in with the API's basic auth, polls
// /ui/api/overview every few seconds and draws it; actions are calls to the
// REST API (/v1/...), so the API's rules (and the viewer's 403) apply.
"use strict";

const REFRESH_MS = 3000;
// A refresh that gets no answer for this long is given up: a service that
// hangs, or a network that drops packets, would otherwise hold the page on
// its last status, refreshing never again and saying nothing.
const LOAD_TIMEOUT_MS = 10000;
const SVG_NS = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

let auth = sessionStorage.getItem("replicad-auth") || "";
let role = "";
let timer = 0;
let loading = false;
let refreshedAt = null; // when the status shown was read

// el builds an element; text is set as text, never parsed as HTML.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

async function call(method, path, body, timeoutMs) {
  const headers = { "Authorization": "Basic " + auth, "X-Requested-With": "replicad-console" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const opts = { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" };
  if (timeoutMs) opts.signal = AbortSignal.timeout(timeoutMs);
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    if (e && e.name === "TimeoutError") throw new Error(`no answer within ${timeoutMs / 1000} s`);
    throw e;
  }
  let data = null;
  const text = await resp.text();
  if (text) { try { data = JSON.parse(text); } catch (_) { data = null; } }
  if (!resp.ok) {
    const err = new Error((data && data.description) || (resp.status + " " + resp.statusText));
    err.status = resp.status;
    throw err;
  }
  return data;
}

function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function duration(seconds) {
  if (seconds < 1) return Math.round(seconds * 1000) + " ms";
  if (seconds < 120) return seconds.toFixed(1) + " s";
  if (seconds < 7200) return Math.round(seconds / 60) + " min";
  // A source down for long has a long lag: hours, then days, not
  // thousands of minutes.
  if (seconds < 48 * 3600) return (seconds / 3600).toFixed(1) + " h";
  return (seconds / 86400).toFixed(1) + " days";
}

function badge(text, cls) { return el("span", { class: "badge " + (cls || text) }, text); }

function bar(done, total) {
  const wrap = el("span", { class: "load" });
  if (total > 0) {
    const pct = Math.min(100, Math.floor(100 * done / total));
    const fill = el("div");
    fill.style.width = pct + "%";
    wrap.append(el("span", { class: "bar", role: "progressbar", "aria-valuenow": pct, "aria-valuemin": 0, "aria-valuemax": 100 }, fill),
      el("span", { class: "bar-label" }, pct + "% of " + bytes(total)));
  } else if (done > 0) {
    wrap.append(el("span", { class: "bar-label" }, bytes(done) + " loaded (size unknown)"));
  } else {
    wrap.append(el("span", { class: "muted" }, "—"));
  }
  return wrap;
}

// lagGraph draws the samples of the last window as an SVG line. now is the
// service's time (unix seconds), which the samples carry: the browser's
// clock may be minutes off, and drew them off the graph.
function lagGraph(points, windowSeconds, now) {
  const w = 240, h = 48, pad = 3;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "lag");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const max = Math.max(1, ...points.map((p) => p[1]));
  const x = (t) => pad + (w - 2 * pad) * (1 - (now - t) / windowSeconds);
  const y = (v) => h - pad - (h - 2 * pad) * (v / max);
  const axis = document.createElementNS(SVG_NS, "line");
  axis.setAttribute("x1", pad);
  axis.setAttribute("x2", w - pad);
  axis.setAttribute("y1", y(0));
  axis.setAttribute("y2", y(0));
  axis.setAttribute("stroke", "#d1d5db");
  svg.append(axis);
  const title = document.createElementNS(SVG_NS, "title");
  title.textContent = `lag over the last ${Math.round(windowSeconds / 60)} minutes, up to ${duration(max)}`;
  svg.append(title);
  if (points.length > 0) {
    const line = document.createElementNS(SVG_NS, "polyline");
    line.setAttribute("points", points.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#c6302b");
    line.setAttribute("stroke-width", "1.5");
    svg.append(line);
    const last = points[points.length - 1];
    const dot = document.createElementNS(SVG_NS, "circle");
    dot.setAttribute("cx", x(last[0]).toFixed(1));
    dot.setAttribute("cy", y(last[1]).toFixed(1));
    dot.setAttribute("r", "2");
    dot.setAttribute("fill", "#c6302b");
    svg.append(dot);
  }
  const label = document.createElementNS(SVG_NS, "text");
  label.setAttribute("x", w - 4);
  label.setAttribute("y", 12);
  label.setAttribute("text-anchor", "end");
  label.setAttribute("font-size", "10");
  label.setAttribute("fill", "#6b7280");
  label.textContent = "max " + duration(max);
  svg.append(label);
  return svg;
}

// ask shows the dialog; it resolves true when OK is pressed.
function ask(title, text, url, okLabel) {
  return new Promise((resolve) => {
    const d = $("dialog");
    $("dialog-title").textContent = title;
    $("dialog-text").textContent = text;
    $("dialog-url-row").hidden = !url;
    $("dialog-url").value = url || "";
    $("dialog-cancel").hidden = !okLabel;
    $("dialog-ok").textContent = okLabel || "Close";
    d.returnValue = "";
    d.addEventListener("close", () => {
      // The URL holds a password: it stays in the page only while shown.
      $("dialog-url").value = "";
      resolve(d.returnValue === "ok");
    }, { once: true });
    d.showModal();
  });
}

async function copyURL() {
  const input = $("dialog-url");
  input.select();
  try { await navigator.clipboard.writeText(input.value); } catch (_) { document.execCommand("copy"); }
  $("dialog-copy").textContent = "Copied";
  setTimeout(() => { $("dialog-copy").textContent = "Copy"; }, 1500);
}

// act runs an action, then refreshes. Its error has an element of its own,
// kept until the next action: the refresh clears only its own (#error), and
// cleared the action's at once when they shared one.
async function act(fn) {
  $("action-error").textContent = "";
  try { await fn(); } catch (e) { $("action-error").textContent = e.message; }
  await load();
}

function setSync(db, state) {
  return act(() => call("PUT", "/v1/bdbs/" + db.uid, { replica_sync: state }));
}

async function showSourceURL(db) {
  try {
    const r = await call("GET", `/v1/bdbs/${db.uid}/source_url`);
    await ask(`Replica Of source URL of ${db.name}`, "Destinations replicate from this URL. It holds the admin password: keep it secret.", r.uri);
  } catch (e) { $("action-error").textContent = e.message; }
}

async function regenerate(db) {
  const ok = await ask(`Regenerate the admin password of ${db.name}?`,
    "Destinations that use the current source URL are disconnected once the previous password's grace period ends (--admin-password-grace, 15 minutes by default), and fail until they are given the new URL.", "", "Regenerate");
  if (!ok) return;
  await act(async () => {
    const r = await call("POST", `/v1/bdbs/${db.uid}/actions/regenerate_admin_password`);
    await ask(`New Replica Of source URL of ${db.name}`, "Give this URL to the destinations.", r.uri);
  });
}

async function confirmSync(db, state, text) {
  if (await ask(`${state === "stopped" ? "Stop" : "Re-enable"} the sync of ${db.name}?`, text, "", "OK")) await setSync(db, state);
}

function actions(db) {
  if (role !== "admin") return el("div", { class: "actions muted" }, "read-only");
  // Stopped for good: every action on it is refused until its delete ends.
  if (db.status === "deleting") return el("div", { class: "actions muted" }, "being deleted: DELETE it again to finish");
  const buttons = [];
  if (db.replica_sources.length > 0) {
    if (db.replica_sync === "enabled") {
      buttons.push(el("button", { type: "button", "data-action": "pause", onclick: () => setSync(db, "paused") }, "Pause"));
      buttons.push(el("button", { type: "button", class: "danger", "data-action": "stop",
        onclick: () => confirmSync(db, "stopped", "The syncers disconnect. Enabling the sync again flushes the database and loads every source.") }, "Stop"));
    } else if (db.replica_sync === "paused") {
      buttons.push(el("button", { type: "button", "data-action": "resume", onclick: () => setSync(db, "enabled") }, "Resume"));
      buttons.push(el("button", { type: "button", class: "danger", "data-action": "stop",
        onclick: () => confirmSync(db, "stopped", "The syncers disconnect. Enabling the sync again flushes the database and loads every source.") }, "Stop"));
    } else {
      buttons.push(el("button", { type: "button", "data-action": "enable",
        onclick: () => confirmSync(db, "enabled", "The database is flushed and every source is loaded again.") }, "Re-enable"));
    }
  }
  buttons.push(el("button", { type: "button", "data-action": "source-url", onclick: () => showSourceURL(db) }, "Get Replica Of source URL"));
  buttons.push(el("button", { type: "button", class: "danger", "data-action": "regenerate", onclick: () => regenerate(db) }, "Regenerate password"));
  return el("div", { class: "actions" }, ...buttons);
}

function fact(label, value) { return el("div", null, el("span", null, label), value); }

function renderDatabase(db, inst) {
  const mem = db.memory_size > 0 ? bytes(db.memory_used) + " of " + bytes(db.memory_size) : bytes(db.memory_used);
  const card = el("article", { class: "db", id: "db-" + db.uid, "data-name": db.name },
    el("div", { class: "db-head" },
      el("h3", null, db.name), el("span", { class: "muted" }, "uid " + db.uid), badge(db.status, db.status),
      db.replica_sources.length > 0 ? el("span", null, "Replica Of: ", el("span", { class: "badge replica-sync " + db.replica_sync }, db.replica_sync),
        " ", badge(db.replica_sync_status || "", db.replica_sync_status)) : null,
      actions(db)),
    el("div", { class: "facts" },
      fact("Endpoint", el("span", { class: "mono" }, `${db.endpoint.host}:${db.endpoint.port}`)),
      fact("Replication endpoint", el("span", { class: "mono" }, `${db.endpoint.host}:${db.replication_port}`)),
      fact("Memory", el("span", null, mem)),
      fact("TLS", el("span", null, db.tls_mode))));
  if (db.last_error) card.append(el("p", { class: "error db-error" }, db.last_error));
  if (db.replica_sources.length > 0) {
    const rows = db.replica_sources.map((s, i) => {
      const extra = db.sources[i] || { address: "", lag: [], bytes_received: 0, wire_bytes_received: 0 };
      let compression = el("span", { class: "muted" }, s.compression ? "asked, not active" : "off");
      if (s.compression_active) {
        const saved = Math.max(0, extra.bytes_received - extra.wire_bytes_received);
        compression = el("span", null, `level ${s.compression}: ${bytes(saved)} saved`);
      } else if (s.compression_note) {
        compression = el("span", { class: "muted" }, s.compression_note);
      }
      return el("tr", { class: "source", "data-address": extra.address },
        el("td", { class: "mono" }, extra.address),
        el("td", null, el("span", { class: "badge source-status " + s.status }, s.status)),
        el("td", { class: "source-lag" }, duration(s.lag / 1000)),
        el("td", null, bar(s.rdb_transferred, s.rdb_size)),
        el("td", null, compression),
        el("td", null, el("div", { class: "error source-error" }, s.last_error || ""),
          // What of the source the destination does not reproduce: a
          // source in sync may still miss keys; say it beside its errors.
          s.sync_note ? el("div", { class: "note sync-note" }, s.sync_note) : null),
        el("td", null, lagGraph(extra.lag, inst.window_seconds, inst.now)));
    });
    card.append(el("table", { class: "sources" },
      el("thead", null, el("tr", null, ...["Source", "Status", "Lag", "Load", "Compression", "Last error, notes", "Lag, last 15 min"].map((h) => el("th", null, h)))),
      el("tbody", null, ...rows)));
  }
  return card;
}

function render(o) {
  role = o.instance.role;
  $("instance-name").textContent = `${o.instance.name} · ${o.instance.version}`;
  $("role").textContent = role === "viewer" ? "viewer (read-only)" : "admin";
  $("role").className = "badge " + role;
  $("refreshed").textContent = "updated " + new Date().toLocaleTimeString();
  $("certificates").replaceChildren(...o.instance.certificates.map((c) => {
    const days = Math.floor((new Date(c.not_after) - o.instance.now * 1000) / 86400000);
    return el("tr", null, el("td", null, c.role), el("td", null, c.subject), el("td", { class: "mono" }, c.sha256),
      el("td", { class: days < 30 ? "error" : "" }, `${c.not_after.slice(0, 10)} (${days} days)`));
  }));
  // Keep a dialog's database list stable: re-render the cards, not the dialog.
  $("databases").replaceChildren(...o.databases.map((db) => renderDatabase(db, o.instance)));
  $("no-databases").hidden = o.databases.length > 0;
}

async function load() {
  if (loading || !auth) return;
  loading = true;
  try {
    render(await call("GET", "/ui/api/overview", undefined, LOAD_TIMEOUT_MS));
    refreshedAt = new Date();
    $("databases").classList.remove("stale");
    $("error").textContent = "";
  } catch (e) {
    if (e.status === 401) { logout("Wrong user name or password."); return; }
    // The cards still show the last status read: say how old it is, so
    // that an "in-sync" of then is not taken for one of now.
    $("databases").classList.add("stale");
    const asOf = refreshedAt ? refreshedAt.toLocaleTimeString() : "the last refresh";
    $("error").textContent = `Cannot refresh: ${e.message}. The status below is as of ${asOf}.`;
  } finally { loading = false; }
}

function show(loggedIn) {
  $("login").hidden = loggedIn;
  $("console").hidden = !loggedIn;
  $("whoami").hidden = !loggedIn;
}

function logout(message) {
  auth = "";
  if ($("dialog").open) $("dialog").close();
  $("dialog-url").value = "";
  $("action-error").textContent = "";
  sessionStorage.removeItem("replicad-auth");
  clearInterval(timer);
  show(false);
  $("login-error").textContent = message || "";
}

async function login(ev) {
  ev.preventDefault();
  const user = $("login-user").value, pass = $("login-password").value;
  auth = btoa(unescape(encodeURIComponent(user + ":" + pass)));
  try {
    await call("GET", "/ui/api/overview");
  } catch (e) {
    logout(e.status === 401 ? "Wrong user name or password." : e.message);
    return;
  }
  sessionStorage.setItem("replicad-auth", auth);
  $("login-password").value = "";
  start();
}

function start() {
  show(true);
  load();
  clearInterval(timer);
  timer = setInterval(load, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout(""));
  $("dialog-copy").addEventListener("click", copyURL);
  if (auth) start(); else show(false);
});
