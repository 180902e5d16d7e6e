// The wikitide dashboard: the live part (chart, editor share, ticker) follows /v1/stream (Server-Sent Events; the
// browser's EventSource reconnects by itself with Last-Event-ID, so no change is missed); the window counts and top
// pages are polled every 2 s. Page content is inserted with textContent only: titles and users come from the wikis.
"use strict";

const WINDOWS = ["1m", "5m", "1h", "24h"];
const POLL_MS = 2000;
const STAT_COLUMNS = [
  (s) => s.events, (s) => s.by_type.edit, (s) => s.by_type.new, (s) => s.by_type.log,
  (s) => s.by_type.categorize, (s) => s.by_type.other, (s) => s.bot_events, (s) => s.human_events,
  (s) => s.bytes_added, (s) => s.bytes_removed, (s) => s.synthetic_events,
];

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function query(params) {
  const wiki = document.getElementById("wiki").value.trim();
  const search = new URLSearchParams(params);
  if (wiki) search.set("wiki", wiki);
  return search.toString();
}

async function getJSON(path) {
  const response = await fetch(path, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function safeLink(url, text) {
  // Only http(s) links: a stored event must not be able to plant a javascript: URL.
  if (typeof url === "string" && /^https?:\/\//.test(url)) {
    const a = el("a", text);
    a.href = url;
    a.rel = "noopener noreferrer";
    return a;
  }
  return el("span", text);
}

function renderStats(allStats) {
  const tbody = document.querySelector("#stats tbody");
  tbody.replaceChildren(...allStats.map((stats) => {
    const row = el("tr");
    row.append(el("th", stats.window));
    for (const column of STAT_COLUMNS) row.append(el("td", column(stats).toLocaleString(), "num"));
    return row;
  }));
  const synthetic = allStats.some((stats) => stats.synthetic_events > 0);
  document.getElementById("synthetic-banner").hidden = !synthetic;
  const asOf = allStats.length ? allStats[0].as_of : null;
  document.getElementById("as-of").textContent = asOf ? `newest minute: ${asOf}` : "no events yet";
}

function renderTopPages(top) {
  const list = document.getElementById("top-pages");
  if (!top.pages.length) {
    list.replaceChildren(el("li", "no page edits in this window", "muted"));
    return;
  }
  list.replaceChildren(...top.pages.map((page) => {
    const item = el("li");
    item.append(el("strong", page.title), el("span", ` (${page.wiki}) `, "muted"), el("span", `${page.edits} edits`));
    return item;
  }));
}

const TICKER_ROWS = 30;
const CHART_SECONDS = 120;
const CHART_WIKIS = 6;
const COLORS = ["#36c", "#d33", "#14866d", "#fc3", "#a66", "#72777d", "#000"];
let seconds = new Map();  // epoch second -> Map(wiki -> changes)
let editors = [];  // [epoch second, editor kind]
let stream = null;

function diffLink(change) {
  // The wiki's own diff page, from the page URL's origin (only http(s) origins: see safeLink).
  if (typeof change.page_url !== "string" || !/^https?:\/\//.test(change.page_url)) return el("span", "");
  if (!Number.isInteger(change.rev_new) || !Number.isInteger(change.rev_old)) return el("span", "");
  const url = `${new URL(change.page_url).origin}/w/index.php?diff=${change.rev_new}&oldid=${change.rev_old}`;
  return safeLink(url, "diff");
}

function tickerRow(change) {
  const row = el("tr", null, change.bot ? "bot" : "");
  const delta = typeof change.byte_delta === "number" ? change.byte_delta : null;
  const deltaText = delta === null ? "" : (delta > 0 ? `+${delta}` : String(delta));
  const time = typeof change.dt === "string" ? change.dt.replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, "") : "";
  const page = el("td");
  page.append(safeLink(change.page_url, change.title || "(no title)"));
  if (change.synthetic) page.append(el("span", " synthetic", "muted"));
  const diff = el("td");
  diff.append(diffLink(change));
  row.append(el("td", time), el("td", change.wiki), el("td", change.type), page, el("td", change.user || ""),
    el("td", deltaText, delta === null ? "num" : (delta >= 0 ? "num plus" : "num minus")), diff);
  return row;
}

function onChange(change) {
  const tbody = document.querySelector("#recent tbody");
  tbody.prepend(tickerRow(change));
  while (tbody.rows.length > TICKER_ROWS) tbody.deleteRow(-1);
  const now = Math.floor(Date.now() / 1000);
  const counts = seconds.get(now) || new Map();
  counts.set(change.wiki, (counts.get(change.wiki) || 0) + 1);
  seconds.set(now, counts);
  editors.push([now, change.editor]);
  if (change.synthetic) document.getElementById("synthetic-banner").hidden = false;
}

function drawChart() {
  const now = Math.floor(Date.now() / 1000);
  const first = now - CHART_SECONDS + 1;
  for (const second of seconds.keys()) if (second < first) seconds.delete(second);
  editors = editors.filter(([second]) => second >= first);
  const totals = new Map();
  for (const counts of seconds.values()) for (const [wiki, n] of counts) totals.set(wiki, (totals.get(wiki) || 0) + n);
  const wikis = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, CHART_WIKIS).map(([wiki]) => wiki);
  const series = [...wikis, "other"].map((wiki) => {
    const points = [];
    for (let second = first; second <= now; second += 1) {
      const counts = seconds.get(second) || new Map();
      let n = 0;
      if (wiki === "other") { for (const [w, c] of counts) if (!wikis.includes(w)) n += c; } else n = counts.get(wiki) || 0;
      points.push(n);
    }
    return { wiki, points };
  });
  const canvas = document.getElementById("rate-chart");
  const context = canvas.getContext("2d");
  const top = Math.max(1, ...series.flatMap((s) => s.points));
  context.clearRect(0, 0, canvas.width, canvas.height);
  context.fillStyle = "#72777d";
  context.fillText(`${top}/s`, 4, 12);
  series.forEach((s, index) => {
    context.strokeStyle = COLORS[index % COLORS.length];
    context.beginPath();
    s.points.forEach((n, i) => {
      const x = (i / (CHART_SECONDS - 1)) * canvas.width;
      const y = canvas.height - 2 - (n / top) * (canvas.height - 18);
      if (i === 0) context.moveTo(x, y); else context.lineTo(x, y);
    });
    context.stroke();
  });
  canvas.dataset.points = String(seconds.size);
  document.getElementById("rate-legend").replaceChildren(...series.map((s, index) => {
    const item = el("span", `${s.wiki} ${(s.points.reduce((a, b) => a + b, 0) / CHART_SECONDS).toFixed(2)}/s`);
    const swatch = el("i");
    swatch.style.background = COLORS[index % COLORS.length];
    item.prepend(swatch);
    return item;
  }));
  const kinds = new Map();
  for (const [, kind] of editors) kinds.set(kind, (kinds.get(kind) || 0) + 1);
  const share = [...kinds.entries()].sort((a, b) => b[1] - a[1])
    .map(([kind, n]) => `${kind} ${Math.round((100 * n) / editors.length)}%`).join(" · ");
  document.getElementById("editor-share").textContent =
    editors.length ? `editors in the last 2 minutes: ${share}` : "editors in the last 2 minutes: no changes";
}

function follow() {
  // A new filter is a new stream: the old one is closed and the live view starts again.
  if (stream) stream.close();
  seconds = new Map();
  editors = [];
  document.querySelector("#recent tbody").replaceChildren();
  const wiki = document.getElementById("wiki").value.trim();
  stream = new EventSource(`/v1/stream${wiki ? `?${new URLSearchParams({ wiki })}` : ""}`);
  const status = document.getElementById("live-status");
  stream.onopen = () => { status.textContent = "live"; status.className = "muted"; };
  stream.onerror = () => { status.textContent = "reconnecting…"; status.className = "error"; };
  stream.onmessage = (event) => {
    try { onChange(JSON.parse(event.data)); } catch (error) { /* one bad event must not stop the view */ }
  };
}

// While the processors have counted nothing yet, /health says "starting" and why: shown instead of silent zeros.
async function renderPipelineState() {
  const banner = document.getElementById("starting-banner");
  try {
    const response = await fetch("/health", { cache: "no-store" });
    const health = await response.json();
    const starting = health.status === "starting";
    banner.hidden = !starting;
    if (starting) banner.textContent = `Starting: ${health.pipeline.reason}`;
  } catch (error) {
    banner.hidden = true;  // the data requests report their own failures
  }
}

let inFlight = false;

async function refresh() {
  // A slow answer must not pile up requests behind it.
  if (inFlight) return;
  inFlight = true;
  const status = document.getElementById("status");
  const topWindow = document.getElementById("window").value;
  try {
    renderPipelineState();
    const [allStats, top] = await Promise.all([
      Promise.all(WINDOWS.map((w) => getJSON(`/v1/stats?${query({ window: w })}`))),
      getJSON(`/v1/pages/top?${query({ window: topWindow, limit: "10" })}`),
    ]);
    renderStats(allStats);
    renderTopPages(top);
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    status.className = "muted";
  } catch (error) {
    status.textContent = `update failed: ${error.message}`;
    status.className = "error";
  } finally {
    inFlight = false;
  }
}

function start() {
  document.getElementById("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    follow();
    refresh();
  });
  document.getElementById("window").addEventListener("change", refresh);
  follow();
  refresh();
  setInterval(refresh, POLL_MS);
  setInterval(drawChart, 1000);
}

start();
