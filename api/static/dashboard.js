// The wikitide dashboard: polls the JSON endpoints of this same origin every 2 s and redraws.
// Page content is inserted with textContent only, since titles, users and comments come from the wikis.
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

function renderRecent(recent) {
  const tbody = document.querySelector("#recent tbody");
  tbody.replaceChildren(...recent.edits.map((edit) => {
    const row = el("tr", null, edit.bot ? "bot" : "");
    const delta = typeof edit.byte_delta === "number" ? edit.byte_delta : null;
    const deltaText = delta === null ? "" : (delta > 0 ? `+${delta}` : String(delta));
    const time = typeof edit.dt === "string" ? edit.dt.replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, "") : "";
    const page = el("td");
    page.append(safeLink(edit.page_url, edit.title || "(no title)"));
    if (edit.synthetic) page.append(el("span", " synthetic", "muted"));
    row.append(el("td", time), el("td", edit.wiki), el("td", edit.type), page, el("td", edit.user || ""),
      el("td", deltaText, delta === null ? "num" : (delta >= 0 ? "num plus" : "num minus")));
    return row;
  }));
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
    const [allStats, top, recent] = await Promise.all([
      Promise.all(WINDOWS.map((w) => getJSON(`/v1/stats?${query({ window: w })}`))),
      getJSON(`/v1/pages/top?${query({ window: topWindow, limit: "10" })}`),
      getJSON(`/v1/edits/recent?${query({ limit: "20" })}`),
    ]);
    renderStats(allStats);
    renderTopPages(top);
    renderRecent(recent);
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
  document.getElementById("filters").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  document.getElementById("window").addEventListener("change", refresh);
  refresh();
  setInterval(refresh, POLL_MS);
}

start();
