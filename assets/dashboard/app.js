// The dashboard's core: sign-in, the admin API, views, the event stream.
// Everything goes through the admin API scripts use, with the admin key
// from this tab's sessionStorage in a header (no cookies).
"use strict";

const KEY_STORE = "claude-pool-admin-key";
const $ = (sel, root = document) => root.querySelector(sel);

// The state the views render, filled by the API and kept by the events.
const state = {
  health: null, workers: null, accounts: [], keys: [], monthUsage: new Map(),
  requests: [], batches: new Map(), finished: [], boot: null,
};

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { "x-api-key": sessionStorage.getItem(KEY_STORE) || "" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const msg = (json && json.error && json.error.message) || text || res.statusText;
    throw new ApiError(res.status, msg);
  }
  return json;
}

// ---- sign-in ---------------------------------------------------------

async function signIn(key) {
  sessionStorage.setItem(KEY_STORE, key);
  try {
    await api("GET", "/admin/keys");
  } catch (e) {
    sessionStorage.removeItem(KEY_STORE);
    const why = e.status === 403
      ? `Refused: ${e.message}. The dashboard needs an admin key, not a client key.`
      : e.status === 401 ? `Refused: ${e.message}.` : `Could not sign in: ${e.message}`;
    $("#signin-error").textContent = why;
    return false;
  }
  $("#signin-error").textContent = "";
  $("#signin-view").hidden = true;
  for (const id of ["#nav", "#signout", "#live"]) $(id).hidden = false;
  show(location.hash.slice(1) || "pool");
  await reloadAll();
  connect();
  return true;
}

// Each worker's time in its state as the moment it entered it, so that the
// page's clock ticks the age on between samples (sent only on change).
function withSince(w) {
  const now = Date.now();
  for (const x of w.items) x.since_ms = now - x.state_secs * 1000;
  return w;
}

function signOut() {
  sessionStorage.removeItem(KEY_STORE);
  location.hash = "";
  location.reload();
}

// ---- views -----------------------------------------------------------

const VIEWS = ["pool", "accounts", "keys", "requests", "usage", "batches"];

function show(view) {
  if (!VIEWS.includes(view)) view = "pool";
  for (const v of VIEWS) $(`#view-${v}`).hidden = v !== view;
  for (const b of document.querySelectorAll("#nav button")) {
    if (b.dataset.view === view) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  if (location.hash.slice(1) !== view) history.replaceState(null, "", `#${view}`);
  if (view === "usage") views.usage().catch(report);
}

function report(e) {
  console.error(e);
  if (e instanceof ApiError && e.status === 401) signOut();
}

async function reloadAll() {
  const tasks = [
    api("GET", "/health").catch((e) => e instanceof ApiError ? null : Promise.reject(e))
      .then((h) => { if (h) { state.health = h; state.workers = withSince(h.workers); state.accounts = h.accounts; } }),
    loadKeys(),
    api("GET", "/admin/requests?limit=200").then((r) => { state.requests = r.data; }),
    api("GET", "/admin/batches").then((r) => { state.batches = new Map(r.data.map((b) => [b.id, b])); }),
  ];
  await Promise.all(tasks.map((t) => t.catch(report)));
  views.renderAll();
}

async function loadKeys() {
  const month = new Date(Date.now() - 30 * 86400000).toISOString();
  const [keys, usage] = await Promise.all([
    api("GET", "/admin/keys"),
    api("GET", `/admin/usage?group_by=key&from=${encodeURIComponent(month)}`),
  ]);
  state.keys = keys.data;
  state.monthUsage = new Map(usage.data.map((g) => [g.key, g]));
}

// ---- the event stream ------------------------------------------------

let source = null;
let retryTimer = null;

function setLive(on) {
  const live = $("#live");
  live.textContent = on ? "live" : "reconnecting…";
  live.classList.toggle("on", on);
}

// EventSource cannot send headers: trade the key for a one-time ticket.
// A ticket opens one stream, so after any error the page closes the
// stream and opens a new one with a new ticket (the daemon may have
// restarted; `hello` then names a new boot and everything is reloaded).
async function connect() {
  clearTimeout(retryTimer);
  if (source) source.close();
  let ticket;
  try {
    ticket = (await api("POST", "/admin/events/ticket")).ticket;
  } catch (e) {
    setLive(false);
    if (e instanceof ApiError && e.status === 401) return signOut();
    retryTimer = setTimeout(connect, 2000);
    return;
  }
  source = new EventSource(`/admin/events?ticket=${encodeURIComponent(ticket)}`);
  source.onerror = () => {
    setLive(false);
    source.close();
    retryTimer = setTimeout(connect, 2000);
  };
  const on = (name, f) => source.addEventListener(name, (ev) => {
    try { f(JSON.parse(ev.data)); } catch (e) { console.error(name, e); }
  });
  on("hello", (h) => {
    setLive(true);
    if (state.boot && state.boot !== h.boot) reloadAll();
    state.boot = h.boot;
  });
  on("lagged", () => reloadAll());
  on("workers", (w) => { state.workers = withSince(w); views.pool(); });
  on("pool", (p) => { state.health = Object.assign(state.health || {}, p); views.pool(); });
  on("accounts", (a) => { state.accounts = a; views.accounts(); });
  on("request", (row) => {
    state.requests.unshift(row);
    state.requests.length = Math.min(state.requests.length, 1000);
    state.finished.push({ at: row.at_ms + row.duration_ms, duration: row.duration_ms, ok: row.status < 400 });
    views.requests();
    views.pool();
    if (row.method !== "GET") scheduleKeys();
  });
  on("batch", (b) => { state.batches.set(b.id, b); views.batches(); });
}

// Key usage moves with requests: re-read it, at most once a second.
let keysTimer = null;
function scheduleKeys() {
  if (keysTimer) return;
  keysTimer = setTimeout(() => {
    keysTimer = null;
    loadKeys().then(() => views.keys()).catch(report);
  }, 1000);
}

// ---- dialog ----------------------------------------------------------

function openDialog(title, ...body) {
  $("#dialog-title").textContent = title;
  $("#dialog-body").replaceChildren(...body);
  const d = $("#dialog");
  if (!d.open) d.showModal();
}

// ---- start -----------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#signin").addEventListener("submit", (ev) => {
    ev.preventDefault();
    signIn($("#key").value.trim());
  });
  $("#signout").addEventListener("click", signOut);
  $("#dialog-close").addEventListener("click", () => $("#dialog").close());
  for (const b of document.querySelectorAll("#nav button")) {
    b.addEventListener("click", () => show(b.dataset.view));
  }
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  views.bind();
  setInterval(() => { refreshTimes(); views.tick(); }, 1000);
  if (sessionStorage.getItem(KEY_STORE)) signIn(sessionStorage.getItem(KEY_STORE));
  else $("#key").focus();
});
