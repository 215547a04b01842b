// evse-agent dashboard: plain JavaScript over the local API (docs/dashboard.md).
// Every call sends the token the user logged in with (sessionStorage) as a bearer token;
// the event stream is opened with the cookie POST /api/v1/login sets (EventSource cannot
// send headers). Data is shown with textContent only, never parsed as HTML.
"use strict";

const TOKEN_KEY = "evse-agent-token";
const POLL_MS = 2000;
const CHART_POINTS = 600; // 20 minutes at one point per poll
const PAGE = 25;
const ACTIVE = ["CREATED", "WAITING_TO_START", "STARTED", "WAITING_TO_STOP", "STOP_FAILED"];
// The local limit (smart charging): shown only where GET /api/v1/connectors answers 200.
const limitBody = (amps) => ({ amps, source: "dashboard" });
const REASONS = {
  accepted: "accepted",
  unknown_card: "the CSMS does not know this card (Invalid)",
  blocked: "the card is blocked",
  expired: "the card has expired",
  concurrent_transaction: "the card is already charging elsewhere",
  csms_timeout: "the CSMS did not answer in time and the offline rules deny",
  csms_unreachable: "the CSMS was not reachable and the offline rules deny",
  offline_unknown: "offline, and the card is not in the local list or cache",
  connector_not_free: "the connector was not free",
  reserved_for_another: "the connector is reserved for someone else",
};

const state = {
  status: null, sessions: new Map(), charts: new Map(), cards: new Map(),
  historyOffset: 0, historyTotal: 0, stream: null, timer: null, limits: false,
};

const $ = (selector) => document.querySelector(selector);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function say(text, bad = false) {
  const box = $("#message");
  box.textContent = text;
  box.className = "message" + (bad ? " error" : "");
}

const token = () => sessionStorage.getItem(TOKEN_KEY) || "";

class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error;
    super(`${status} ${error ? error.type + ": " + error.details : (body && body.detail) || ""}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + token() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    logout("The agent no longer accepts this token: log in again.");
    throw new ApiError(401, null);
  }
  return response;
}

async function call(method, path, body) {
  const response = await api(method, path, body);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function query(form) {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (!value) continue;
    const input = form.elements[name];
    // datetime-local is the browser's local time; the API wants ISO 8601 with an offset.
    params.set(name, input.type === "datetime-local" ? new Date(value).toISOString() : value);
  }
  return params;
}

const kw = (watts) => (watts == null ? "–" : (watts / 1000).toFixed(2) + " kW");
const kwh = (wh) => (wh == null ? "–" : (wh / 1000).toFixed(3) + " kWh");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

// --- login -------------------------------------------------------------------------------

async function login(candidate) {
  const response = await fetch("/api/v1/login", {
    method: "POST", headers: { Authorization: "Bearer " + candidate },
  });
  if (!response.ok) return null;
  sessionStorage.setItem(TOKEN_KEY, candidate);
  return response.json();
}

function logout(text) {
  sessionStorage.removeItem(TOKEN_KEY);
  fetch("/api/v1/logout", { method: "POST" }).catch(() => {});
  if (state.stream) state.stream.close();
  clearInterval(state.timer);
  state.stream = null;
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = text || "";
}

async function enter(who) {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#charger").textContent = who.charger + (who.scope === "read" ? " (read only)" : "");
  document.body.dataset.scope = who.scope;
  state.limits = (await api("GET", "/api/v1/connectors").catch(() => null))?.status === 200;
  openStream();
  await refresh();
  state.timer = setInterval(refresh, POLL_MS);
  route();
}

// --- pages -------------------------------------------------------------------------------

const LOADERS = {
  history: loadHistory, authorizations: loadAuthorizations, frames: loadFrames,
  config: loadConfig, link: showLink, bench: loadBench,
};

function route() {
  const name = (location.hash || "#connectors").slice(1);
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== name;
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.getAttribute("href") === "#" + name);
  }
  const load = LOADERS[name];
  if (load) load().catch(failed);
  if (name === "connectors") for (const chart of state.charts.values()) chart.draw();
}

function failed(error) {
  if (error.status !== 401) say(error.message || String(error), true);
}

// --- connectors, live ----------------------------------------------------------------------

async function refresh() {
  try {
    const [status, recent] = await Promise.all([
      call("GET", "/api/v1/status"), call("GET", "/api/v1/sessions?limit=20"),
    ]);
    state.status = status;
    for (const session of recent.sessions) state.sessions.set(session.sessionId, session);
    renderConnectors(status);
    renderLinkBadge(status.link);
    $("#nav-bench").hidden = !status.bench;
    if (location.hash === "#link") showLink();
  } catch (error) {
    failed(error);
  }
}

function activeSession(connectorId) {
  let found = null;
  for (const session of state.sessions.values()) {
    if (session.connectorId === connectorId && ACTIVE.includes(session.sessionStatus)
        && (!found || session.createdAt > found.createdAt)) found = session;
  }
  return found;
}

function renderConnectors(status) {
  const select = $("#start-connector");
  for (const connector of status.connectors) {
    let card = state.cards.get(connector.id);
    if (!card) {
      card = makeCard(connector);
      state.cards.set(connector.id, card);
      $("#connector-list").append(card.root);
      select.append(el("option", { value: connector.evse_id, text: `${connector.id} (${connector.evse_id})` }));
    }
    updateCard(card, connector);
  }
}

function makeCard(connector) {
  const facts = el("dl", { class: "facts" });
  const fields = {};
  for (const [key, label] of [["status", "Status"], ["pilot", "Pilot"], ["contactor", "Contactor"],
    ["power", "Power"], ["energy", "Session energy"], ["session", "Session"], ["offered", "Offered"],
    ["error", "Error"]]) {
    fields[key] = el("dd", { "data-field": key });
    facts.append(el("dt", { text: label }), fields[key]);
  }
  const canvas = el("canvas", { class: "chart", "data-points": "0", "aria-label": "power of the current session" });
  const stop = el("button", { type: "button", class: "stop", text: "Stop", hidden: "" });
  const amps = el("input", { type: "number", min: "0", max: "80", step: "1", size: "4", "aria-label": "limit in A" });
  const limit = el("form", { class: "row limit", hidden: "" },
    el("label", { text: "Limit (A) " }, amps), el("button", { type: "submit", class: "quiet", text: "Set limit" }));
  const root = el("article", { class: "card", id: "connector-" + connector.id, "data-connector": connector.id },
    el("h3", {}, el("span", { text: "Connector " + connector.id }), el("small", { class: "muted", text: connector.evse_id })),
    facts, canvas, el("div", { class: "row" }, stop), limit);
  const card = { root, fields, stop, limit, chart: new Chart(canvas), id: connector.id };
  state.charts.set(connector.id, card.chart);
  stop.addEventListener("click", () => stopSession(card));
  limit.addEventListener("submit", (event) => {
    event.preventDefault();
    call("PUT", `/api/v1/connectors/${connector.id}/limit`, limitBody(Number(amps.value)))
      .then(() => say(`Limit of connector ${connector.id} set to ${amps.value} A`)).catch(failed);
  });
  return card;
}

function updateCard(card, connector) {
  const tx = connector.transaction;
  const session = activeSession(connector.id);
  const f = card.fields;
  f.status.textContent = connector.status;
  f.status.className = connector.status === "Faulted" ? "bad" : connector.status === "Charging" ? "ok" : "";
  f.pilot.textContent = connector.pilot;
  f.contactor.textContent = connector.contactor;
  f.power.textContent = kw(connector.power_w);
  const used = tx && connector.energy_wh != null && tx.meter_start != null ? connector.energy_wh - tx.meter_start : null;
  f.energy.textContent = kwh(used);
  f.session.textContent = session ? `${session.sessionStatus} · ${session.idTag}` : tx ? `transaction ${tx.id} · ${tx.tag}` : "none";
  const offered = connector.offered_current;
  f.offered.textContent = offered == null ? "–" : `${offered} A` + (connector.limit_source ? ` (limited by ${connector.limit_source})` : "");
  f.error.textContent = connector.error;
  f.error.className = connector.error === "NoError" ? "muted" : "bad";
  card.session = session;
  card.stop.hidden = !session || session.mode === "local" || document.body.dataset.scope !== "control";
  card.limit.hidden = !state.limits || document.body.dataset.scope !== "control";
  if (tx || (session && session.sessionStatus === "STARTED")) {
    card.chart.add(Date.now(), connector.power_w || 0, tx ? tx.started : null);
  }
}

async function stopSession(card) {
  if (!card.session) return;
  try {
    const stopped = await call("POST", `/api/v1/sessions/${card.session.sessionId}/stop`);
    state.sessions.set(stopped.sessionId, stopped);
    say(`Session ${stopped.sessionId}: ${stopped.sessionStatus}`);
    await refresh();
  } catch (error) {
    failed(error);
  }
}

async function startSession(event) {
  event.preventDefault();
  const evse = $("#start-connector").value;
  const tag = $("#start-tag").value.trim();
  try {
    const session = await call("POST", "/api/v1/sessions/start", { evse_id: evse, id_tag: tag });
    state.sessions.set(session.sessionId, session);
    say(`Session ${session.sessionId}: ${session.sessionStatus}` +
        (session.sessionStatus === "WAITING_TO_START" ? " (waiting for the EV)" : ""));
    await refresh();
  } catch (error) {
    failed(error);
  }
}

// The live chart: the power of the current session, one point per poll and per event.
class Chart {
  constructor(canvas) {
    this.canvas = canvas;
    this.points = [];
    this.started = null;
  }

  add(time, watts, started) {
    if (started && started !== this.started) {
      this.started = started;
      this.points = [];
    }
    this.points.push([time, watts]);
    if (this.points.length > CHART_POINTS) this.points.shift();
    this.canvas.dataset.points = String(this.points.length);
    this.draw();
  }

  reset() {
    this.points = [];
    this.started = null;
    this.canvas.dataset.points = "0";
    this.draw();
  }

  draw() {
    const c = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = c.clientWidth, height = c.clientHeight;
    if (!width) return;
    c.width = width * ratio;
    c.height = height * ratio;
    const g = c.getContext("2d");
    g.scale(ratio, ratio);
    g.clearRect(0, 0, width, height);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#5b6472";
    if (this.points.length < 2) {
      g.fillText(this.points.length ? "waiting for the next reading…" : "no session charging", 8, height / 2);
      return;
    }
    const top = Math.max(1000, ...this.points.map((p) => p[1])) * 1.15;
    const t0 = this.points[0][0], t1 = this.points[this.points.length - 1][0];
    const x = (t) => 36 + ((t - t0) / Math.max(1, t1 - t0)) * (width - 44);
    const y = (w) => height - 16 - (w / top) * (height - 26);
    g.strokeStyle = "#d8dde4";
    g.beginPath();
    g.moveTo(36, y(0)); g.lineTo(width - 8, y(0));
    g.moveTo(36, y(top / 1.15)); g.lineTo(width - 8, y(top / 1.15));
    g.stroke();
    g.fillText((top / 1150).toFixed(1) + " kW", 2, y(top / 1.15) + 4);
    g.fillText("0", 24, y(0) + 4);
    g.fillText(Math.round((t1 - t0) / 1000) + " s", width - 40, height - 3);
    g.strokeStyle = "#0b6bcb";
    g.lineWidth = 2;
    g.beginPath();
    this.points.forEach(([t, w], i) => (i ? g.lineTo(x(t), y(w)) : g.moveTo(x(t), y(w))));
    g.stroke();
  }
}

function openStream() {
  if (state.stream) state.stream.close();
  const stream = new EventSource("/api/v1/events");
  state.stream = stream;
  stream.addEventListener("session", (message) => {
    const session = JSON.parse(message.data);
    document.body.dataset.events = String(Number(document.body.dataset.events || 0) + 1);
    state.sessions.set(session.sessionId, session);
    const chart = state.charts.get(session.connectorId);
    if (session.event === "SESSION_STARTED" && chart) chart.reset();
    if (session.event) {  // a line of its own: it never hides the answer to an action
      $("#last-event").textContent = `${new Date().toLocaleTimeString()} ${session.event}: ` +
        `session ${session.sessionId} on connector ${session.connectorId} (${session.idTag})`;
    }
    if (state.status) renderConnectors(state.status);
  });
  stream.addEventListener("error", () => {
    if (stream.readyState !== EventSource.CLOSED || state.stream !== stream) return;
    // Closed for good (the agent restarted: its ticket key is new): log in again, reopen.
    setTimeout(() => token() && login(token()).then((who) => who && openStream()), 3000);
  });
}

function renderLinkBadge(link) {
  const badge = $("#link-badge");
  badge.textContent = link.up ? `CSMS online (${link.registration})` : "CSMS offline";
  badge.className = "badge " + (link.up ? "ok" : "bad");
}

// --- history ---------------------------------------------------------------------------------

async function loadHistory() {
  const params = query($("#history-form"));
  params.set("limit", String(PAGE));
  params.set("offset", String(state.historyOffset));
  const page = await call("GET", "/api/v1/sessions?" + params);
  state.historyTotal = page.total;
  const body = $("#history-table tbody");
  body.replaceChildren(...page.sessions.map((s) => el("tr", { "data-session": s.sessionId },
    el("td", { text: when(s.startTime || s.createdAt) }), el("td", { text: s.sessionStatus }),
    el("td", { text: String(s.connectorId) }), el("td", { text: s.idTag }), el("td", { text: s.mode }),
    el("td", { text: s.duration || "–" }), el("td", { text: s.energy ? s.energy.value + " Wh" : "–" }),
    el("td", { text: s.stopReason || s.failure || "" }))));
  const last = Math.min(page.total, state.historyOffset + page.sessions.length);
  $("#history-total").textContent = page.total ? `${state.historyOffset + 1}–${last} of ${page.total}` : "no session matches";
  $("#history-prev").disabled = state.historyOffset === 0;
  $("#history-next").disabled = last >= page.total;
}

async function exportCsv() {
  const response = await api("GET", "/api/v1/sessions.csv?" + query($("#history-form")));
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => ({})));
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  const link = el("a", { href: URL.createObjectURL(await response.blob()), download: name ? name[1] : "sessions.csv" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// --- authorizations, OCPP log, configuration, link -----------------------------------------------

async function loadAuthorizations() {
  const rows = (await call("GET", "/api/v1/authorizations?" + query($("#auth-form")))).authorizations;
  $("#auth-table tbody").replaceChildren(...rows.reverse().map((r) => el("tr", {},
    el("td", { text: when(r.at) }), el("td", { text: r.id_tag }), el("td", { text: String(r.connector_id) }),
    el("td", { text: r.purpose }), el("td", { class: r.accepted ? "ok" : "bad", text: r.accepted ? "accepted" : "refused" }),
    el("td", { text: r.source }),
    el("td", { class: "reason", text: (REASONS[r.reason] || r.reason) + (r.status ? ` (OCPP ${r.status})` : "") }))));
  if (!rows.length) $("#auth-table tbody").append(el("tr", {}, el("td", { colspan: "7", class: "muted", text: "no decision recorded" })));
}

async function loadFrames() {
  const found = (await call("GET", "/api/v1/frames?" + query($("#frames-form")))).records;
  $("#frame-list").replaceChildren(...found.map((r) => el("li", { class: r.kind === "CALLERROR" ? "bad" : "", text: r.line })));
  if (!found.length) $("#frame-list").append(el("li", { class: "muted", text: "no message matches" }));
}

async function loadConfig() {
  $("#config-text").textContent = JSON.stringify(await call("GET", "/api/v1/config"), null, 2);
}

async function showLink() {
  const status = state.status;
  if (!status) return;
  const facts = [["CSMS", status.link.endpoint], ["Connected", status.link.up ? "yes" : "no"],
    ["Registration", status.link.registration || "–"], ["Charger", status.charger.id],
    ["Agent version", status.charger.version]];
  $("#link-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
  const errors = status.last_errors.slice().reverse();
  $("#error-list").replaceChildren(...errors.map((e) => el("li", { class: e.level === "ERROR" ? "bad" : "warn", text: `${e.time} ${e.level} ${e.text}` })));
  if (!errors.length) $("#error-list").append(el("li", { class: "muted", text: "no warning or error since the start" }));
}

// --- bench (simulation only) ---------------------------------------------------------------------

async function loadBench() {
  const site = await call("GET", "/api/v1/bench/state");
  $("#bench-list").replaceChildren(...site.connectors.map((c) => {
    const verb = (path, body) => () => call("POST", `/api/v1/bench/connectors/${c.id}/${path}`, body)
      .then(loadBench).then(refresh).catch(failed);
    return el("article", { class: "card", "data-bench": c.id },
      el("h3", { text: "Connector " + c.id }),
      el("p", { text: `EV ${c.ev.plugged ? "plugged" : "unplugged"}, state ${c.ev.state}, pilot ${c.pilot}, ` +
        `contactor ${c.contactor.relay_closed ? "closed" : "open"}, offer ${c.offered_current_a} A` }),
      el("div", { class: "row" },
        el("button", { type: "button", onclick: verb("plug"), text: "Plug" }),
        el("button", { type: "button", class: "quiet", onclick: verb("unplug"), text: "Unplug" }),
        el("button", { type: "button", class: "quiet", onclick: verb("ev", { state: "C" }), text: "EV asks for power (C)" }),
        el("button", { type: "button", class: "quiet", onclick: verb("ev", { state: "B" }), text: "EV pauses (B)" })));
  }));
}

async function presentCard(event) {
  event.preventDefault();
  const uid = $("#card-uid").value.trim();
  try {
    await call("POST", "/api/v1/bench/cards", { uid });
    say(`Card ${uid} presented to the reader`);
  } catch (error) {
    failed(error);
  }
}

// --- wiring ---------------------------------------------------------------------------------------

function on(selector, kind, handler) {
  $(selector).addEventListener(kind, handler);
}

function submitted(handler) {
  return (event) => { event.preventDefault(); handler().catch(failed); };
}

document.addEventListener("DOMContentLoaded", async () => {
  on("#login-form", "submit", async (event) => {
    event.preventDefault();
    const who = await login($("#token").value.trim());
    if (who) {
      $("#token").value = "";
      enter(who);
    } else {
      $("#login-error").textContent = "This token is not accepted.";
    }
  });
  on("#logout", "click", () => logout(""));
  on("#start-form", "submit", startSession);
  on("#history-form", "submit", submitted(() => { state.historyOffset = 0; return loadHistory(); }));
  on("#history-prev", "click", () => { state.historyOffset = Math.max(0, state.historyOffset - PAGE); loadHistory().catch(failed); });
  on("#history-next", "click", () => { state.historyOffset += PAGE; loadHistory().catch(failed); });
  on("#export-csv", "click", () => exportCsv().catch(failed));
  on("#auth-form", "submit", submitted(loadAuthorizations));
  on("#frames-form", "submit", submitted(loadFrames));
  on("#card-form", "submit", presentCard);
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => state.charts.forEach((chart) => chart.draw()));
  const who = token() ? await login(token()) : null;
  if (who) enter(who);
  else logout("");
});
