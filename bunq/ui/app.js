// The bunq web UI: plain ES module, no build step. Data comes from the HTTP API (with the session's bearer
// token when the server asks for one) and stays current through the WebSocket event stream (/ws); a slow
// periodic refresh is only a fallback.

const TOKEN_KEY = "bunq.token";
const PAGE = 50;
const CHART_POINTS = 120; // stats:snapshot comes every 5 s: the last 10 minutes
const FALLBACK_MS = 30000;
const STATES = ["waiting", "prioritized", "delayed", "active", "completed", "failed"];
const EVENTS = [
  "job:*", "queue:*", "dlq:*", "worker:*", "cron:*", "webhook:*", "ratelimit:*", "concurrency:*",
  "stats:snapshot", "health:status", "storage:status", "config:*",
];

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  limits: new Map(), // queue -> {rate, concurrency}: learnt from this page's changes and from events
  queueCounts: new Map(), // queue -> counts, from queue:counts and stats:snapshot
  series: [[], [], [], []], // t (s), pushed/s, completed/s, failed/s
  last: null, // {t, pushed, completed, failed}
  stats: null,
  health: null,
  ws: null,
  wsTries: 0,
  page: null, // {refresh(), onEvent(msg)}
  chart: null,
};

// ---------- small DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (selector, root = document) => root.querySelector(selector);
const main = () => $("#main");

function fmtNum(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: 2 });
}

function fmtTime(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  const pad = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtAgo(ms) {
  if (!ms) return "—";
  const s = Math.round((Date.now() - ms) / 1000);
  const future = s < 0;
  const a = Math.abs(s);
  const text = a < 60 ? `${a}s` : a < 3600 ? `${Math.round(a / 60)}m` : a < 86400 ? `${Math.round(a / 3600)}h` : `${Math.round(a / 86400)}d`;
  return future ? `in ${text}` : `${text} ago`;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

function num(value) {
  return h("td", { class: "num" }, fmtNum(value));
}

function toast(text, bad = false) {
  const el = $("#toast");
  el.textContent = text;
  el.className = bad ? "toast bad" : "toast";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

function confirmAction(title, text, label = "Confirm") {
  const dialog = $("#confirm");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = label;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(...args); }, ms);
  };
}

// ---------- the API

class Unauthorized extends Error {}

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (response.status === 401) {
    showLogin(state.token ? "That token was refused." : "");
    throw new Unauthorized("Unauthorized");
  }
  const reply = await response.json().catch(() => ({ ok: false, error: `HTTP ${response.status}` }));
  if (!response.ok || reply.ok === false) throw new Error(reply.error || `HTTP ${response.status}`);
  return reply;
}

const get = (path) => api("GET", path);
const q = (name) => `/queues/${encodeURIComponent(name)}`;

async function act(label, fn) {
  try {
    const reply = await fn();
    toast(reply && typeof reply.count === "number" ? `${label}: ${fmtNum(reply.count)}` : `${label}: done`);
    state.page?.refresh();
    return reply;
  } catch (error) {
    if (!(error instanceof Unauthorized)) toast(`${label} failed: ${error.message}`, true);
    return null;
  }
}

// ---------- auth

function showLogin(message) {
  closeSocket();
  state.page = null;
  $("#top").hidden = true;
  document.body.dataset.live = "off";
  const error = h("p", { class: "error", id: "login-error", role: "alert" }, message || "");
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", {
    class: "login card",
    onsubmit: (event) => {
      event.preventDefault();
      state.token = input.value.trim();
      sessionStorage.setItem(TOKEN_KEY, state.token);
      start();
    },
  },
  h("h1", {}, "bunq"),
  h("p", { class: "muted" }, "This server requires an access token."),
  h("label", { for: "token" }, "Access token"),
  input,
  error,
  h("button", { type: "submit" }, "Sign in"));
  main().replaceChildren(form);
  input.focus();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  showLogin("");
}

// ---------- the event stream

function closeSocket() {
  if (state.ws) {
    state.ws.onclose = null;
    state.ws.close();
    state.ws = null;
  }
}

function setLive(text, on) {
  const el = $("#live");
  el.textContent = text;
  el.className = on ? "live on" : "live";
  document.body.dataset.live = on ? "on" : "off";
}

function connect() {
  closeSocket();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  state.ws = ws;
  setLive("connecting…", false);
  const subscribe = () => ws.send(JSON.stringify({ cmd: "Subscribe", events: EVENTS, reqId: "subscribe" }));
  ws.onopen = () => {
    // commands on one connection run concurrently: subscribe only once the token is accepted
    if (state.token) ws.send(JSON.stringify({ cmd: "Auth", token: state.token, reqId: "auth" }));
    else subscribe();
  };
  ws.onmessage = (message) => {
    let msg;
    try { msg = JSON.parse(message.data); } catch { return; }
    if (msg.reqId === "auth") {
      if (msg.ok) subscribe(); else showLogin("That token was refused.");
      return;
    }
    if (msg.reqId === "subscribe") {
      if (msg.ok) { state.wsTries = 0; setLive("live", true); }
      return;
    }
    if (msg.event) onEvent(msg);
  };
  ws.onclose = () => {
    state.ws = null;
    setLive("reconnecting…", false);
    const wait = Math.min(15000, 500 * 2 ** state.wsTries++);
    setTimeout(() => { if (!state.ws && state.page) connect(); }, wait);
  };
}

function onEvent(msg) {
  const data = msg.data || {};
  switch (msg.event) {
    case "stats:snapshot":
      addSnapshot(data, msg.ts || Date.now());
      for (const [name, counts] of Object.entries(data.queues || {})) state.queueCounts.set(name, counts);
      break;
    case "health:status":
      state.health = { ...(state.health || {}), ...data, status: data.ok ? "healthy" : "degraded" };
      break;
    case "queue:counts":
      state.queueCounts.set(data.queue, data);
      break;
    case "ratelimit:set": limitsOf(data.queue).rate = data.max; break;
    case "ratelimit:cleared": limitsOf(data.queue).rate = null; break;
    case "concurrency:set": limitsOf(data.queue).concurrency = data.concurrency; break;
    case "concurrency:cleared": limitsOf(data.queue).concurrency = null; break;
    default: break;
  }
  state.page?.onEvent(msg);
}

function limitsOf(queue) {
  if (!state.limits.has(queue)) state.limits.set(queue, { rate: undefined, concurrency: undefined });
  return state.limits.get(queue);
}

function addSnapshot(totals, ts) {
  const now = { t: ts / 1000, pushed: totals.totalPushed, completed: totals.totalCompleted, failed: totals.totalFailed };
  const { queues, workers, uptime, ...figures } = totals; // the snapshot's uptime is in ms, /stats' in s
  state.stats = { ...(state.stats || {}), ...figures };
  if (state.last && now.t > state.last.t) {
    const dt = now.t - state.last.t;
    const rate = (key) => Math.max(0, (now[key] - state.last[key]) / dt);
    const [t, p, c, f] = state.series;
    t.push(now.t); p.push(rate("pushed")); c.push(rate("completed")); f.push(rate("failed"));
    if (t.length > CHART_POINTS) state.series.forEach((s) => s.shift());
    if (state.chart) state.chart.setData(state.series);
    const el = $("#chart");
    if (el) el.dataset.points = String(t.length);
  }
  state.last = now;
}

// ---------- pages

function heading(title, ...extra) {
  return h("div", { class: "page-head" }, h("h1", {}, title), ...extra);
}

function card(label, value, cls = "") {
  return h("div", { class: `stat ${cls}` }, h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value));
}

function table(caption, columns, rows, empty = "Nothing here yet.") {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.startsWith("#") ? "num" : "" }, c.replace(/^#/, ""))));
  const body = rows.length ? rows : [h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty))];
  return h("div", { class: "table-wrap" }, h("table", {}, h("caption", { class: "sr-only" }, caption), h("thead", {}, head), h("tbody", {}, body)));
}

async function overviewPage() {
  const cards = h("div", { class: "stats", id: "totals" });
  const chartBox = h("div", { class: "chart", id: "chart", role: "img", "aria-label": "Throughput: pushed, completed and failed jobs per second" });
  const side = h("div", { class: "grid2" });
  main().replaceChildren(
    heading("Overview"),
    cards,
    h("section", { class: "card" }, h("h2", {}, "Throughput ", h("span", { class: "muted small" }, "jobs per second, up to the last 10 minutes")), chartBox),
    side,
  );
  makeChart(chartBox);

  let workers = [];
  let storage = null;
  const draw = () => {
    const s = state.stats || {};
    cards.replaceChildren(
      card("Waiting", fmtNum(s.waiting)),
      card("Active", fmtNum(s.active), "accent"),
      card("Delayed", fmtNum(s.delayed)),
      card("Completed", fmtNum(s.completed), "good"),
      card("Failed / DLQ", fmtNum(s.dlq ?? s.failed), (s.dlq ?? s.failed) ? "bad" : ""),
      card("Workers online", fmtNum(workers.filter((w) => w.status !== "disconnected").length)),
    );
    const health = state.health || {};
    const conn = health.connections || {};
    const memory = health.memory || {};
    side.replaceChildren(
      h("section", { class: "card" }, h("h2", {}, "Server"),
        h("dl", { class: "kv" },
          h("dt", {}, "Status"), h("dd", {}, h("span", { class: `badge ${health.status === "healthy" ? "good" : "bad"}`, id: "health-status" }, health.status || "—")),
          h("dt", {}, "Shards up"), h("dd", { class: "num" }, fmtNum(conn.shards ?? s.shards)),
          h("dt", {}, "Uptime"), h("dd", { class: "num" }, fmtDuration((health.uptime ?? s.uptime ?? 0) * 1000)),
          h("dt", {}, "Version"), h("dd", {}, health.version || "—"),
          h("dt", {}, "Connections"), h("dd", { class: "num" }, `${fmtNum(conn.tcp)} http · ${fmtNum(conn.ws)} ws · ${fmtNum(conn.sse)} sse`),
          h("dt", {}, "Totals"), h("dd", { class: "num" }, `${fmtNum(s.totalPushed)} pushed · ${fmtNum(s.totalCompleted)} completed · ${fmtNum(s.totalFailed)} failed`),
        )),
      h("section", { class: "card" }, h("h2", {}, "Memory and storage"),
        h("dl", { class: "kv" },
          h("dt", {}, "Memory (RSS)"), h("dd", { class: "num" }, memory.rss === undefined ? "—" : `${fmtNum(memory.rss)} MiB`),
          h("dt", {}, "Storage used"), h("dd", { class: "num" }, fmtBytes(storage?.storageBytes)),
          h("dt", {}, "Free disk"), h("dd", { class: "num" }, fmtBytes(storage?.freeDiskBytes)),
          h("dt", {}, "Disk"), h("dd", {}, storage ? h("span", { class: `badge ${storage.diskFull ? "bad" : "good"}` }, storage.diskFull ? "full: durable writes refused" : "ok") : "—"),
        )),
    );
  };
  const refresh = async () => {
    const [stats, health, ws, st] = await Promise.all([get("/stats"), get("/health"), get("/workers"), get("/storage")]);
    state.stats = { ...stats.stats };
    state.health = health;
    workers = ws.data.workers;
    storage = st;
    if (!state.last) state.last = { t: Date.now() / 1000, pushed: stats.stats.totalPushed, completed: stats.stats.totalCompleted, failed: stats.stats.totalFailed };
    draw();
  };
  const later = debounce(() => refresh().catch(() => {}), 1000);
  await refresh();
  return {
    refresh,
    onEvent(msg) {
      if (msg.event === "stats:snapshot" || msg.event === "health:status") draw();
      else if (msg.event.startsWith("worker:") && msg.event !== "worker:heartbeat") later();
      else if (msg.event === "storage:status") later();
    },
  };
}

function makeChart(el) {
  if (!window.uPlot) return;
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  const axis = { stroke: color("--muted"), grid: { stroke: color("--line"), width: 1 }, ticks: { stroke: color("--line") } };
  const opts = {
    width: Math.max(300, el.clientWidth),
    height: 220,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true, range: (u, min, max) => { const span = Math.min(CHART_POINTS * 5, Math.max(60, max - min)); return [max - span, max + 2]; } }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
    axes: [
      { ...axis, space: 80, values: (u, splits) => splits.map((t) => new Date(t * 1000).toTimeString().slice(0, 8)) },
      { ...axis, size: 50 },
    ],
    series: [
      {},
      { label: "pushed/s", stroke: color("--accent"), width: 2, value: (u, v) => (v === null ? "—" : v.toFixed(2)) },
      { label: "completed/s", stroke: color("--good"), width: 2, value: (u, v) => (v === null ? "—" : v.toFixed(2)) },
      { label: "failed/s", stroke: color("--bad"), width: 2, value: (u, v) => (v === null ? "—" : v.toFixed(2)) },
    ],
  };
  state.chart?.destroy();
  state.chart = new window.uPlot(opts, state.series, el);
  el.dataset.points = String(state.series[0].length);
}

window.addEventListener("resize", debounce(() => {
  const el = $("#chart");
  if (state.chart && el) state.chart.setSize({ width: Math.max(300, el.clientWidth), height: 220 });
}, 200));

function limitText(value) {
  if (value === undefined) return h("span", { class: "muted", title: "not yet known: set it here, or it shows once changed" }, "?");
  if (value === null) return h("span", { class: "muted" }, "none");
  return fmtNum(value);
}

async function queueActions(name, paused, compact = false) {
  return [
    paused
      ? h("button", { type: "button", class: "small-btn", "data-action": "resume", onclick: () => act(`Resumed ${name}`, () => api("POST", `${q(name)}/resume`)) }, "Resume")
      : h("button", { type: "button", class: "small-btn", "data-action": "pause", onclick: () => act(`Paused ${name}`, () => api("POST", `${q(name)}/pause`)) }, "Pause"),
    h("button", {
      type: "button", class: "small-btn", "data-action": "drain",
      onclick: async () => {
        if (await confirmAction(`Drain ${name}?`, "Every waiting and delayed job of this queue is removed.", "Drain")) act(`Drained ${name}`, () => api("POST", `${q(name)}/drain`));
      },
    }, "Drain"),
    h("button", {
      type: "button", class: "small-btn", "data-action": "clean",
      onclick: async () => {
        if (await confirmAction(`Clean ${name}?`, "Completed jobs of this queue are removed (up to 10,000 at a time).", "Clean")) {
          act(`Cleaned ${name}`, () => api("POST", `${q(name)}/clean`, { grace: 0, state: "completed", limit: 10000 }));
        }
      },
    }, "Clean"),
    h("button", {
      type: "button", class: "small-btn danger", "data-action": "obliterate",
      onclick: async () => {
        if (await confirmAction(`Obliterate ${name}?`, "The queue and every job in it, in any state, are deleted. This cannot be undone.", "Obliterate")) {
          await act(`Obliterated ${name}`, () => api("POST", `${q(name)}/obliterate`));
          if (!compact) location.hash = "#/queues";
        }
      },
    }, compact ? "Obliterate" : "Obliterate queue"),
  ];
}

async function queuesPage() {
  const body = h("div", {});
  main().replaceChildren(heading("Queues"), body);
  const info = new Map();
  const draw = async () => {
    const rows = [];
    for (const [name, row] of [...info.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
      const c = state.queueCounts.get(name) || row.counts;
      const limits = limitsOf(name);
      rows.push(h("tr", { "data-queue": name },
        h("th", { scope: "row" }, h("a", { href: `#/queues/${encodeURIComponent(name)}` }, name), row.paused ? h("span", { class: "badge warn" }, "paused") : ""),
        num((c.waiting || 0) + (c.prioritized || 0)), num(c.active), num(c.delayed), num(c.completed), num(c.failed), num(row.dlq),
        h("td", { class: "num" }, limitText(limits.rate)), h("td", { class: "num" }, limitText(limits.concurrency)),
        h("td", { class: "actions" }, await queueActions(name, row.paused, true)),
      ));
    }
    body.replaceChildren(table("Queues", ["Queue", "#Waiting", "#Active", "#Delayed", "#Completed", "#Failed", "#DLQ", "#Rate limit", "#Concurrency", "Actions"], rows, "No queues yet: push a job to create one."));
  };
  const refresh = async () => {
    // one request for every queue: counts, paused and limits (a failed job is a DLQ entry in bunq)
    const summary = await get("/queues/summary");
    info.clear();
    for (const row of summary) {
      info.set(row.name, { counts: row.counts, paused: row.paused, dlq: row.counts.failed });
      state.queueCounts.set(row.name, row.counts);
      Object.assign(limitsOf(row.name), { rate: row.rateLimit ?? null, concurrency: row.concurrency ?? null });
    }
    await draw();
  };
  const later = debounce(() => refresh().catch(() => {}), 500);
  await refresh();
  return {
    refresh,
    onEvent(msg) {
      const name = msg.data?.queue;
      if (msg.event === "queue:counts" || msg.event.startsWith("ratelimit:") || msg.event.startsWith("concurrency:")) {
        if (info.has(name)) draw(); else later();
      } else if (msg.event.startsWith("queue:") || msg.event.startsWith("dlq:") || msg.event === "job:pushed" && !info.has(name)) later();
    },
  };
}

function parseHash() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  return { parts: (path || "/").split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || "") };
}

function setParams(params) {
  const { parts } = parseHash();
  location.hash = `#/${parts.map(encodeURIComponent).join("/")}?${params.toString()}`;
}

async function queuePage(name) {
  const { params } = parseHash();
  const current = params.get("state") || "waiting";
  const offset = Math.max(0, Number(params.get("offset") || 0));
  const jobId = params.get("job");
  const summary = h("div", { class: "row" });
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Job states" });
  const list = h("div", {});
  const pager = h("div", { class: "row pager" });
  const inspector = h("section", { class: "card inspector", id: "inspector", "aria-label": "Job inspector" });
  const limits = h("form", { class: "row inline-form" });
  main().replaceChildren(
    heading(name, h("span", { class: "muted" }, "queue"), h("div", { class: "spacer" }), summary),
    h("div", { class: "split" }, h("div", {}, tabs, list, pager, limits), inspector),
  );

  let counts = {};
  let paused = false;
  const drawTabs = () => {
    const c = state.queueCounts.get(name) || counts;
    tabs.replaceChildren(...STATES.map((s) => {
      const selected = s === current;
      return h("a", { role: "tab", "aria-selected": selected ? "true" : "false", class: selected ? "tab active" : "tab", href: `#/queues/${encodeURIComponent(name)}?state=${s}` }, s, " ", h("span", { class: "count" }, fmtNum(c[s] || 0)));
    }));
  };
  const drawSummary = async () => {
    summary.replaceChildren(paused ? h("span", { class: "badge warn" }, "paused") : h("span", { class: "badge good" }, "running"), ...(await queueActions(name, paused)));
  };
  const drawLimits = () => {
    const l = limitsOf(name);
    const rate = h("input", { id: "rate", type: "number", min: "1", placeholder: l.rate ? String(l.rate) : "none", class: "narrow" });
    const conc = h("input", { id: "concurrency", type: "number", min: "1", placeholder: l.concurrency ? String(l.concurrency) : "none", class: "narrow" });
    const set = (kind, input, label) => () => {
      const value = Number(input.value);
      if (!value) return act(`Cleared ${label}`, () => api("DELETE", `${q(name)}/${kind}`)).then((r) => r && (kind === "rate-limit" ? (l.rate = null) : (l.concurrency = null)));
      return act(`Set ${label} to ${value}`, () => api("PUT", `${q(name)}/${kind}`, { limit: value })).then((r) => r && (kind === "rate-limit" ? (l.rate = value) : (l.concurrency = value)));
    };
    limits.replaceChildren(
      h("label", { for: "rate" }, "Rate limit (jobs/s)"), rate, h("button", { type: "button", class: "small-btn", onclick: set("rate-limit", rate, "rate limit") }, "Set"),
      h("label", { for: "concurrency" }, "Concurrency"), conc, h("button", { type: "button", class: "small-btn", onclick: set("concurrency", conc, "concurrency") }, "Set"),
      h("span", { class: "muted small" }, "empty clears"),
    );
  };
  const refreshList = async () => {
    const { jobs } = await get(`${q(name)}/jobs/list?state=${current}&limit=${PAGE}&offset=${offset}`);
    const rows = jobs.map((job) => h("tr", { "data-job": job.id, class: job.id === jobId ? "selected" : "" },
      h("td", { class: "mono" }, h("a", { href: `#/queues/${encodeURIComponent(name)}?state=${current}&offset=${offset}&job=${job.id}` }, job.id)),
      h("td", {}, job.name),
      num(job.priority),
      h("td", { class: "num" }, `${job.attempts}/${job.maxAttempts}`),
      h("td", { class: "num" }, job.progress ? `${job.progress}%` : "—"),
      h("td", { class: "num", title: fmtTime(job.createdAt) }, fmtAgo(job.createdAt)),
      h("td", { class: "num", title: fmtTime(job.runAt) }, current === "delayed" ? fmtAgo(job.runAt) : fmtAgo(job.completedAt || job.startedAt)),
    ));
    list.replaceChildren(table(`${current} jobs of ${name}`, ["Job", "Name", "#Priority", "#Attempts", "#Progress", "#Created", current === "delayed" ? "#Runs" : "#Last change"], rows, `No ${current} jobs.`));
    const total = (state.queueCounts.get(name) || counts)[current] || 0;
    const go = (o) => () => { params.set("offset", String(o)); params.delete("job"); setParams(params); };
    pager.replaceChildren(
      h("span", { class: "muted" }, jobs.length ? `${fmtNum(offset + 1)}–${fmtNum(offset + jobs.length)} of ${fmtNum(Math.max(total, offset + jobs.length))}` : ""),
      h("div", { class: "spacer" }),
      h("button", { type: "button", class: "small-btn ghost", disabled: offset === 0, onclick: go(Math.max(0, offset - PAGE)) }, "← Previous"),
      h("button", { type: "button", class: "small-btn ghost", disabled: jobs.length < PAGE, onclick: go(offset + PAGE) }, "Next →"),
    );
  };
  const refreshInspector = async () => {
    if (!jobId) {
      inspector.replaceChildren(h("h2", {}, "Job inspector"), h("p", { class: "muted" }, "Select a job to see its data, options, progress, logs and result."));
      return;
    }
    let job;
    try {
      job = (await get(`/jobs/${encodeURIComponent(jobId)}`)).job;
    } catch (error) {
      if (error instanceof Unauthorized) throw error;
      inspector.replaceChildren(h("h2", {}, "Job inspector"), h("p", { class: "muted" }, `Job ${jobId} is gone (${error.message}).`));
      return;
    }
    const [logs, result] = await Promise.all([get(`/jobs/${encodeURIComponent(jobId)}/logs`).catch(() => ({ logs: [] })), get(`/jobs/${encodeURIComponent(jobId)}/result`).catch(() => ({ result: null }))]);
    const id = encodeURIComponent(job.id);
    const buttons = [];
    if (job.state === "failed") buttons.push(h("button", { type: "button", "data-action": "retry-job", onclick: () => act("Retried", () => api("POST", `${q(name)}/dlq/retry`, { jobId: job.id })) }, "Retry"));
    if (job.state === "completed") buttons.push(h("button", { type: "button", "data-action": "retry-job", onclick: () => act("Retried", () => api("POST", `${q(name)}/retry-completed`, { id: job.id })) }, "Retry"));
    if (job.state === "delayed") buttons.push(h("button", { type: "button", "data-action": "promote", onclick: () => act("Promoted", () => api("POST", `/jobs/${id}/promote`)) }, "Promote"));
    if (!["completed", "failed"].includes(job.state)) {
      buttons.push(h("button", { type: "button", class: "danger", "data-action": "discard", onclick: async () => { if (await confirmAction("Discard this job?", "It moves to the dead-letter queue.", "Discard")) act("Discarded", () => api("POST", `/jobs/${id}/discard`)); } }, "Discard"));
      buttons.push(h("button", { type: "button", class: "danger", "data-action": "cancel", onclick: async () => { if (await confirmAction("Cancel this job?", "It is removed from the queue.", "Cancel job")) act("Cancelled", () => api("DELETE", `/jobs/${id}`)); } }, "Cancel"));
    }
    const options = {
      priority: job.priority, attempts: job.attempts, maxAttempts: job.maxAttempts, backoff: job.backoff, ttl: job.ttl, timeout: job.timeout,
      lifo: job.lifo, tags: job.tags, customId: job.customId, groupId: job.groupId, uniqueKey: job.uniqueKey, dependsOn: job.dependsOn,
      repeat: job.repeat, removeOnComplete: job.removeOnComplete, removeOnFail: job.removeOnFail, durable: job.durable, stallCount: job.stallCount,
    };
    const history = [["created", job.createdAt], ["runs", job.runAt], ["started", job.startedAt], ["heartbeat", job.lastHeartbeat], ["finished", job.completedAt]].filter(([, t]) => t);
    inspector.replaceChildren(
      h("h2", {}, "Job ", h("span", { class: "mono small" }, job.id)),
      h("div", { class: "row" }, h("span", { class: `badge state-${job.state}`, id: "job-state" }, job.state), h("span", { class: "muted" }, job.name), h("div", { class: "spacer" }), buttons),
      h("h3", {}, "Progress"),
      h("div", { class: "progress" }, h("progress", { max: "100", value: String(job.progress || 0), "aria-label": "progress" }), h("span", { class: "num" }, `${job.progress || 0}%`), job.progressMessage ? h("span", { class: "muted" }, job.progressMessage) : ""),
      h("h3", {}, "History"),
      h("ol", { class: "timeline" }, history.map(([label, t]) => h("li", {}, h("span", { class: "muted" }, label), " ", fmtTime(t), " ", h("span", { class: "muted small" }, `(${fmtAgo(t)})`)))),
      job.failedReason ? [h("h3", {}, "Error"), h("pre", { class: "error-box" }, job.failedReason)] : "",
      job.state === "completed" ? [h("h3", {}, "Result"), h("pre", {}, json(result.result))] : "",
      h("h3", {}, "Data"), h("pre", {}, json(job.data)),
      h("h3", {}, "Options"), h("pre", {}, json(options)),
      h("h3", {}, `Logs (${logs.logs.length})`),
      logs.logs.length ? h("pre", { class: "logs" }, logs.logs.map((l) => `${fmtTime(l.timestamp || l.time)} ${l.level || "info"} ${l.message}`).join("\n")) : h("p", { class: "muted" }, "No logs."),
    );
  };
  const refresh = async () => {
    const [c, p] = await Promise.all([get(`${q(name)}/counts`), get(`${q(name)}/paused`)]);
    counts = c.counts;
    paused = p.paused;
    state.queueCounts.set(name, counts);
    drawTabs();
    await drawSummary();
    drawLimits();
    await Promise.all([refreshList(), refreshInspector()]);
  };
  const laterList = debounce(() => refreshList().catch(() => {}), 300);
  const laterInspector = debounce(() => refreshInspector().catch(() => {}), 300);
  const laterAll = debounce(() => refresh().catch(() => {}), 300);
  await refresh();
  return {
    refresh,
    onEvent(msg) {
      const data = msg.data || {};
      if (msg.event === "queue:counts" && data.queue === name) drawTabs();
      if (msg.event.startsWith("job:") && (data.queue === name || data.queue === undefined)) {
        laterList();
        if (data.jobId === jobId) laterInspector();
      }
      if ((msg.event.startsWith("queue:") && msg.event !== "queue:counts" || msg.event.startsWith("dlq:")) && data.queue === name) laterAll();
    },
  };
}

async function queueNames() {
  return (await get("/queues")).queues.sort();
}

async function dlqPage() {
  const { params } = parseHash();
  const names = await queueNames();
  const name = params.get("queue") || names[0];
  const offset = Math.max(0, Number(params.get("offset") || 0));
  const select = h("select", { id: "dlq-queue", onchange: (e) => { params.set("queue", e.target.value); params.delete("offset"); setParams(params); } },
    names.map((n) => h("option", { value: n, selected: n === name }, n)));
  const tools = h("div", { class: "row" });
  const list = h("div", {});
  const pager = h("div", { class: "row pager" });
  const config = h("form", { class: "card config" });
  main().replaceChildren(heading("Dead-letter queue", h("div", { class: "spacer" }), h("label", { for: "dlq-queue" }, "Queue"), select, tools), list, pager, config);
  if (!name) {
    list.replaceChildren(h("p", { class: "muted card" }, "No queues yet."));
    return { refresh: async () => {}, onEvent: (msg) => { if (msg.event === "queue:created" || msg.event === "dlq:added") route(); } };
  }
  tools.replaceChildren(
    h("button", { type: "button", "data-action": "retry-all", onclick: async () => { if (await confirmAction(`Retry every DLQ entry of ${name}?`, "They all go back to waiting.", "Retry all")) act("Retried", () => api("POST", `${q(name)}/dlq/retry`, {})); } }, "Retry all"),
    h("button", { type: "button", class: "danger", "data-action": "purge", onclick: async () => { if (await confirmAction(`Purge the DLQ of ${name}?`, "Every entry is deleted. This cannot be undone.", "Purge")) act("Purged", () => api("POST", `${q(name)}/dlq/purge`)); } }, "Purge"),
  );
  const refreshList = async () => {
    const dlq = await get(`${q(name)}/dlq?limit=${PAGE}&offset=${offset}`);
    const rows = dlq.jobs.map((e) => h("tr", { "data-job": e.id },
      h("td", { class: "mono" }, h("a", { href: `#/queues/${encodeURIComponent(name)}?state=failed&job=${e.id}` }, e.id)),
      h("td", {}, h("span", { class: "badge bad" }, e.reason)),
      h("td", { class: "error-cell", title: e.error || "" }, e.error || "—"),
      num(e.attempts),
      h("td", { class: "num", title: fmtTime(e.enteredAt || e.failedAt) }, fmtAgo(e.enteredAt || e.failedAt)),
      h("td", { class: "actions" }, h("button", { type: "button", class: "small-btn", "data-action": "retry", onclick: () => act("Retried", () => api("POST", `${q(name)}/dlq/retry`, { jobId: e.id })) }, "Retry")),
    ));
    list.replaceChildren(table(`DLQ of ${name}`, ["Job", "Reason", "Error", "#Attempts", "#Entered", "Actions"], rows, "The DLQ is empty."));
    const go = (o) => () => { params.set("offset", String(o)); setParams(params); };
    pager.replaceChildren(
      h("span", { class: "muted" }, `${fmtNum(dlq.total)} ${dlq.total === 1 ? "entry" : "entries"}`), h("div", { class: "spacer" }),
      h("button", { type: "button", class: "small-btn ghost", disabled: offset === 0, onclick: go(Math.max(0, offset - PAGE)) }, "← Previous"),
      h("button", { type: "button", class: "small-btn ghost", disabled: offset + PAGE >= dlq.total, onclick: go(offset + PAGE) }, "Next →"),
    );
  };
  const refreshConfig = async () => {
    const { config: c } = await get(`${q(name)}/dlq-config`);
    const field = (key, label, hint) => [h("label", { for: `cfg-${key}` }, label, hint ? h("span", { class: "muted small" }, ` ${hint}`) : ""), h("input", { id: `cfg-${key}`, name: key, type: "number", min: "0", value: String(c[key]) })];
    const auto = h("input", { id: "cfg-autoRetry", name: "autoRetry", type: "checkbox", checked: c.autoRetry });
    config.replaceChildren(
      h("h2", {}, "DLQ configuration"),
      h("div", { class: "form-grid" },
        h("label", { for: "cfg-autoRetry" }, "Retry automatically"), h("div", {}, auto),
        field("autoRetryInterval", "Auto-retry interval", "ms"), field("maxAutoRetries", "Max auto-retries"),
        field("maxAge", "Max age", "ms"), field("maxEntries", "Max entries")),
      h("div", { class: "row end" }, h("button", { type: "submit" }, "Save configuration")),
    );
    config.onsubmit = (event) => {
      event.preventDefault();
      const body = { autoRetry: auto.checked };
      for (const key of ["autoRetryInterval", "maxAutoRetries", "maxAge", "maxEntries"]) body[key] = Number(config.elements[key].value);
      act("Saved the DLQ configuration", () => api("PUT", `${q(name)}/dlq-config`, { config: body }));
    };
  };
  const later = debounce(() => refreshList().catch(() => {}), 300);
  await Promise.all([refreshList(), refreshConfig()]);
  return {
    refresh: refreshList,
    onEvent(msg) {
      const data = msg.data || {};
      if ((msg.event.startsWith("dlq:") || msg.event === "job:failed" || msg.event === "job:discarded" || msg.event === "job:removed" || msg.event === "queue:obliterated") && (data.queue === name || data.queue === undefined)) later();
    },
  };
}

function formRow(...fields) {
  return h("div", { class: "form-row" }, fields.map(([id, label, input]) => h("div", { class: "field" }, h("label", { for: id }, label), input)));
}

async function cronsPage() {
  const list = h("div", {});
  const form = h("form", { class: "card" });
  main().replaceChildren(heading("Crons"), list, form);
  form.replaceChildren(
    h("h2", {}, "Add a cron"),
    formRow(
      ["cron-name", "Name", h("input", { id: "cron-name", name: "name", required: true })],
      ["cron-queue", "Queue", h("input", { id: "cron-queue", name: "queue", required: true })],
      ["cron-schedule", "Schedule (cron)", h("input", { id: "cron-schedule", name: "schedule", placeholder: "*/5 * * * *" })],
      ["cron-every", "or every (ms)", h("input", { id: "cron-every", name: "repeatEvery", type: "number", min: "1" })],
      ["cron-tz", "Timezone", h("input", { id: "cron-tz", name: "timezone", placeholder: "UTC" })],
    ),
    formRow(["cron-data", "Data (JSON)", h("textarea", { id: "cron-data", name: "data", rows: "2" }, "{}")]),
    h("div", { class: "row end" }, h("button", { type: "submit" }, "Add cron")),
  );
  form.onsubmit = (event) => {
    event.preventDefault();
    const f = form.elements;
    let data;
    try { data = JSON.parse(f.data.value || "null"); } catch { toast("Data is not valid JSON", true); return; }
    const body = { name: f.name.value, queue: f.queue.value, data };
    if (f.schedule.value) body.schedule = f.schedule.value;
    if (f.repeatEvery.value) body.repeatEvery = Number(f.repeatEvery.value);
    if (f.timezone.value) body.timezone = f.timezone.value;
    act(`Added cron ${body.name}`, () => api("POST", "/crons", body)).then((r) => r && form.reset());
  };
  const refresh = async () => {
    const { crons } = await get("/crons");
    list.replaceChildren(table("Crons", ["Name", "Queue", "Schedule", "Timezone", "#Runs", "#Next run", "#Last run", "Actions"], crons.map((c) => h("tr", { "data-cron": c.name },
      h("th", { scope: "row" }, c.name),
      h("td", {}, h("a", { href: `#/queues/${encodeURIComponent(c.queue)}` }, c.queue)),
      h("td", { class: "mono" }, c.schedule || `every ${fmtDuration(c.repeatEvery)}`),
      h("td", {}, c.timezone || "UTC"),
      h("td", { class: "num" }, c.maxLimit ? `${fmtNum(c.executions)}/${fmtNum(c.maxLimit)}` : fmtNum(c.executions)),
      h("td", { class: "num", title: fmtTime(c.nextRun) }, fmtAgo(c.nextRun)),
      h("td", { class: "num", title: fmtTime(c.lastRun) }, fmtAgo(c.lastRun)),
      h("td", { class: "actions" }, h("button", { type: "button", class: "small-btn danger", onclick: async () => { if (await confirmAction(`Delete cron ${c.name}?`, "It stops pushing jobs.", "Delete")) act(`Deleted cron ${c.name}`, () => api("DELETE", `/crons/${encodeURIComponent(c.name)}`)); } }, "Delete")),
    )), "No crons."));
  };
  const later = debounce(() => refresh().catch(() => {}), 300);
  await refresh();
  return { refresh, onEvent: (msg) => { if (msg.event.startsWith("cron:")) later(); } };
}

async function webhooksPage() {
  const list = h("div", {});
  const form = h("form", { class: "card" });
  main().replaceChildren(heading("Webhooks"), list, form);
  const kinds = ["completed", "failed", "pushed", "started"];
  form.replaceChildren(
    h("h2", {}, "Add a webhook"),
    formRow(
      ["hook-url", "URL", h("input", { id: "hook-url", name: "url", type: "url", required: true, placeholder: "https://example.com/hooks/bunq", class: "wide" })],
      ["hook-queue", "Queue (empty: all)", h("input", { id: "hook-queue", name: "queue" })],
      ["hook-secret", "Signing secret", h("input", { id: "hook-secret", name: "secret", type: "password", autocomplete: "off" })],
    ),
    h("fieldset", { class: "row" }, h("legend", {}, "Events"), kinds.map((k) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "events", value: k, checked: k === "completed" || k === "failed" }), k))),
    h("div", { class: "row end" }, h("button", { type: "submit" }, "Add webhook")),
  );
  form.onsubmit = (event) => {
    event.preventDefault();
    const f = form.elements;
    const body = { url: f.url.value, events: [...form.querySelectorAll("input[name=events]:checked")].map((x) => x.value) };
    if (f.queue.value) body.queue = f.queue.value;
    if (f.secret.value) body.secret = f.secret.value;
    act("Added the webhook", () => api("POST", "/webhooks", body)).then((r) => r && form.reset());
  };
  const refresh = async () => {
    const { data } = await get("/webhooks");
    list.replaceChildren(table("Webhooks", ["URL", "Events", "Queue", "Enabled", "#Delivered", "#Failed", "#Last delivery", "Actions"], data.webhooks.map((w) => h("tr", { "data-webhook": w.id },
      h("td", { class: "mono" }, w.url),
      h("td", {}, w.events.join(", ")),
      h("td", {}, w.queue || h("span", { class: "muted" }, "all")),
      h("td", {}, h("span", { class: `badge ${w.enabled ? "good" : "warn"}` }, w.enabled ? "on" : "off")),
      num(w.successCount), num(w.failureCount),
      h("td", { class: "num", title: fmtTime(w.lastTriggered) }, fmtAgo(w.lastTriggered)),
      h("td", { class: "actions" },
        h("button", { type: "button", class: "small-btn", onclick: () => act(w.enabled ? "Disabled" : "Enabled", () => api("PUT", `/webhooks/${encodeURIComponent(w.id)}/enabled`, { enabled: !w.enabled })) }, w.enabled ? "Disable" : "Enable"),
        h("button", { type: "button", class: "small-btn danger", onclick: async () => { if (await confirmAction("Delete this webhook?", w.url, "Delete")) act("Deleted the webhook", () => api("DELETE", `/webhooks/${encodeURIComponent(w.id)}`)); } }, "Delete")),
    )), "No webhooks."));
  };
  const later = debounce(() => refresh().catch(() => {}), 500);
  await refresh();
  return { refresh, onEvent: (msg) => { if (msg.event.startsWith("webhook:")) later(); } };
}

async function workersPage() {
  const list = h("div", {});
  const form = h("form", { class: "card" });
  main().replaceChildren(heading("Workers"), list, form);
  form.replaceChildren(
    h("h2", {}, "Register a worker"),
    formRow(
      ["worker-name", "Name", h("input", { id: "worker-name", name: "name", required: true })],
      ["worker-queues", "Queues (comma-separated)", h("input", { id: "worker-queues", name: "queues", required: true, class: "wide" })],
    ),
    h("div", { class: "row end" }, h("button", { type: "submit" }, "Register")),
  );
  form.onsubmit = (event) => {
    event.preventDefault();
    const f = form.elements;
    const body = { name: f.name.value, queues: f.queues.value.split(",").map((x) => x.trim()).filter(Boolean) };
    act(`Registered ${body.name}`, () => api("POST", "/workers", body)).then((r) => r && form.reset());
  };
  const refresh = async () => {
    const { data } = await get("/workers");
    list.replaceChildren(table("Workers", ["Name", "Queues", "Status", "Host", "#Active", "#Processed", "#Failed", "#Last seen", "Actions"], data.workers.map((w) => h("tr", { "data-worker": w.id },
      h("th", { scope: "row" }, w.name, h("div", { class: "mono small muted" }, w.id)),
      h("td", {}, w.queues.join(", ")),
      h("td", {}, h("span", { class: `badge ${w.status === "active" ? "good" : "warn"}` }, w.status)),
      h("td", {}, w.hostname ? `${w.hostname}${w.pid ? ` (${w.pid})` : ""}` : "—"),
      h("td", { class: "num" }, `${fmtNum(w.activeJobs)}/${fmtNum(w.concurrency)}`), num(w.processedJobs), num(w.failedJobs),
      h("td", { class: "num", title: fmtTime(w.lastSeen) }, fmtAgo(w.lastSeen)),
      h("td", { class: "actions" }, h("button", { type: "button", class: "small-btn danger", onclick: async () => { if (await confirmAction(`Unregister ${w.name}?`, "The worker is removed from the registry.", "Unregister")) act(`Unregistered ${w.name}`, () => api("DELETE", `/workers/${encodeURIComponent(w.id)}`)); } }, "Unregister")),
    )), "No workers registered."));
  };
  const later = debounce(() => refresh().catch(() => {}), 1000);
  await refresh();
  return { refresh, onEvent: (msg) => { if (msg.event.startsWith("worker:")) later(); } };
}

// ---------- routing and start

async function route() {
  const { parts } = parseHash();
  const section = parts[0] || "";
  for (const link of document.querySelectorAll("nav a")) {
    const target = link.getAttribute("href").replace(/^#\/?/, "");
    if (target === section) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  if (section !== "") { state.chart?.destroy(); state.chart = null; }
  const pages = { "": overviewPage, queues: parts[1] ? () => queuePage(parts[1]) : queuesPage, dlq: dlqPage, crons: cronsPage, webhooks: webhooksPage, workers: workersPage };
  const page = pages[section] || overviewPage;
  state.page = null;
  try {
    state.page = await page();
    document.title = `bunq · ${section ? section[0].toUpperCase() + section.slice(1) : "Overview"}`;
  } catch (error) {
    if (error instanceof Unauthorized) return;
    main().replaceChildren(heading("Something went wrong"), h("p", { class: "error" }, error.message));
  }
}

async function start() {
  try {
    await get("/stats");
  } catch (error) {
    if (!(error instanceof Unauthorized)) main().replaceChildren(h("p", { class: "error card" }, `bunq does not answer: ${error.message}`));
    return;
  }
  $("#top").hidden = false;
  $("#signout").hidden = !state.token;
  connect();
  await route();
}

window.addEventListener("hashchange", () => { if (!$("#top").hidden) route(); });
$("#signout").addEventListener("click", signOut);
setInterval(() => { if (state.page && !document.hidden) state.page.refresh().catch(() => {}); }, FALLBACK_MS);
start();
