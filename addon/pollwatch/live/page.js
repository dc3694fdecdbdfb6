// The live job view. Every value that came from traffic (ids, URLs, states, messages) reaches the
// DOM as text (textContent, Text nodes, attributes set one by one); the only markup taken from the
// server is the timeline SVG, which the report's drawing code escapes, parsed as SVG (DOMParser).
// Data comes from the JSON API by short polling with cache: 'no-store' (the API also says
// Cache-Control: no-store): a view of stale-status bugs must not have one.
"use strict";

const STATES = ["queued", "running", "succeeded", "failed", "cancelled", "expired", "unknown"];
const MIN_WAIT_MS = 1000;
const HIDDEN_WAIT_MS = 10000;
const view = {filters: {q: "", state: "", code: "", host: ""}, offset: 0, limit: 50, selected: null,
              listTimer: null, detailTimer: null, detailFor: null, listRun: 0, detailRun: 0};
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function stateClass(state) {
  if (state === null || state === undefined) return "none";
  return STATES.includes(state) ? state : "unknown";
}

function stateBadge(state) {
  return el("span", {class: "state s-" + stateClass(state), text: state || "-"});
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 60) return Math.max(0, seconds).toFixed(seconds < 10 ? 1 : 0) + " s ago";
  if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
  return Math.floor(seconds / 3600) + " h ago";
}

function clock(ts) {
  return ts ? new Date(ts * 1000).toLocaleTimeString() : "-";
}

async function getJSON(url) {
  const response = await fetch(url, {cache: "no-store", headers: {"Accept": "application/json"}});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
  return body;
}

// Polls again once the previous answer is in: at least every MIN_WAIT_MS, slower when the proxy
// took long to answer (a large capture), and rarely while the tab is hidden, so watching never
// loads the proxy much.
function nextIn(startedAt) {
  return Math.max(document.hidden ? HIDDEN_WAIT_MS : MIN_WAIT_MS, 10 * (performance.now() - startedAt));
}

// --- the list -----------------------------------------------------------------------------------

function listURL() {
  const params = new URLSearchParams({offset: view.offset, limit: view.limit});
  for (const [name, value] of Object.entries(view.filters)) if (value) params.set(name, value);
  return "/api/jobs?" + params.toString();
}

async function refreshList() {
  clearTimeout(view.listTimer);
  const run = ++view.listRun;
  const started = performance.now();
  try {
    const data = await getJSON(listURL());
    if (run !== view.listRun) return;  // the filters changed meanwhile: a newer request is on its way
    showList(data);
    setStatus("live", "live · updated " + clock(data.generated_at));
  } catch (error) {
    setStatus("down", "cannot read jobs (" + error.message + "): retrying");
  }
  if (run === view.listRun) view.listTimer = setTimeout(refreshList, nextIn(started));
}

function setStatus(kind, text) {
  const status = $("status");
  status.className = "status " + kind;
  status.textContent = text;
}

function showList(data) {
  const scope = ["session " + data.session_id, data.database ? "database " + data.database : null,
                 data.database_problem].filter(Boolean).join(" · ");
  $("scope").textContent = scope;
  const severities = data.explanations || {};
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
  const rows = data.jobs.map((job) => jobRow(job, data.generated_at, severities));
  $("jobs").tBodies[0].replaceChildren(...rows);
  const again = focused ? rows.find((row) => row.dataset.key === focused) : null;  // keyboard users keep their place
  if (again) again.focus({preventScroll: true});
  $("empty").hidden = rows.length > 0;
  const first = data.total ? data.offset + 1 : 0;
  $("count").textContent = first + "–" + (data.offset + data.jobs.length) + " of " + data.total.toLocaleString();
  $("newer").disabled = data.offset === 0;
  $("older").disabled = data.offset + data.jobs.length >= data.total;
  fillSelect($("state"), [...new Set([...STATES, ...Object.keys(data.facets.states || {})])], data.facets.states);
  fillSelect($("code"), Object.keys(data.facets.codes || {}), data.facets.codes);
  fillSelect($("host"), Object.keys(data.facets.hosts || {}), data.facets.hosts);
}

function jobRow(job, now, severities) {
  const codes = el("td");
  for (const code of job.codes) codes.append(el("span", {class: "chip " + ((severities[code] || {}).severity || ""), text: code}));
  const row = el("tr", {tabindex: "0"},
    el("td", null, el("code", {text: job.job_id})),
    el("td", {class: "state"}, stateBadge(job.last_state)),
    el("td", {class: "n"}, ago(now - (job.last_poll_at || job.created_at))),
    el("td", {class: "n"}, String(job.polls)),
    codes,
    el("td", null, job.host || ""));
  row.dataset.key = job.key;
  if (job.key === view.selected) row.classList.add("selected");
  row.addEventListener("click", () => select(job.key));
  row.addEventListener("keydown", (event) => { if (event.key === "Enter") select(job.key); });
  return row;
}

function fillSelect(select, values, counts) {
  if (document.activeElement === select) return;  // never rebuild a list the user is choosing from
  const current = select.value;
  const wanted = values.includes(current) || !current ? values : [...values, current];
  const first = select.options[0];
  const options = wanted.map((value) => {
    const n = counts && counts[value];
    return el("option", {value: value, text: n ? value + " (" + n + ")" : value});
  });
  select.replaceChildren(first, ...options);
  select.value = current;
}

// --- one job ------------------------------------------------------------------------------------

function select(key) {
  view.selected = key;
  history.replaceState(null, "", "#job=" + encodeURIComponent(key));
  for (const row of $("jobs").tBodies[0].rows) row.classList.toggle("selected", row.dataset.key === key);
  refreshDetail();
}

async function refreshDetail() {
  clearTimeout(view.detailTimer);
  const key = view.selected;
  if (!key) return;
  const run = ++view.detailRun;
  const started = performance.now();
  try {
    const detail = await getJSON("/api/jobs/" + encodeURIComponent(key));
    if (run !== view.detailRun) return;
    showDetail(detail);
  } catch (error) {
    if (run !== view.detailRun) return;
    $("detail").hidden = false;
    $("d-pending").hidden = false;
    $("d-pending").textContent = "cannot read job " + key + ": " + error.message;
  }
  if (run === view.detailRun) view.detailTimer = setTimeout(refreshDetail, nextIn(started));
}

function showDetail(detail) {
  const job = detail.job;
  const fresh = view.detailFor !== job.key;
  view.detailFor = job.key;
  $("detail").hidden = false;
  $("d-id").textContent = job.job_id;
  $("d-state").className = "state s-" + stateClass(job.last_state);
  $("d-state").textContent = job.terminal_state || job.last_state || "no state yet";
  const facts = [["status URL", job.status_url || "none"], ["states", job.states.join(" → ") || "-"],
                 ["polls", String(job.polls)], ["created", clock(job.created_at)], ["host", job.host || "-"],
                 ["key", job.key]];
  $("d-facts").replaceChildren(...facts.flatMap(([name, value]) => [el("dt", {text: name}), el("dd", {text: value})]));
  showTimeline(detail.timeline_svg);
  $("d-pending").hidden = !detail.pending;
  $("d-pending").textContent = detail.pending || "";
  showFindings(detail.findings, detail.explanations || {});
  $("d-support").textContent = detail.support_text || detail.pending || "";
  if (fresh) $("copied").textContent = "";
}

// The drawing is the report's inline SVG (no xmlns: an HTML parser puts it in the SVG namespace).
// It is parsed in a detached document, where nothing runs, and only SVG elements without event
// handlers or outside links are kept, should the server's escaping ever fail.
const SVG_NS = "http://www.w3.org/2000/svg";

function showTimeline(svgText) {
  const box = $("d-timeline");
  const svg = svgText ? new DOMParser().parseFromString(svgText, "text/html").body.firstElementChild : null;
  if (!svg || svg.namespaceURI !== SVG_NS || svg.localName !== "svg") { box.replaceChildren(); return; }
  for (const node of [...svg.querySelectorAll("*")]) {
    if (node.namespaceURI !== SVG_NS || node.localName === "script" || node.localName === "foreignObject") { node.remove(); continue; }
    for (const attr of [...node.attributes]) {
      const link = attr.localName === "href" && !attr.value.startsWith("#");
      if (attr.name.toLowerCase().startsWith("on") || link) node.removeAttributeNode(attr);
    }
  }
  box.replaceChildren(document.importNode(svg, true));
}

function showFindings(findings, explanations) {
  const anchored = new Set();
  const items = findings.map((finding) => {
    const about = explanations[finding.code] || {};
    const item = el("li", null,
      el("span", {class: "sev sev-" + (["error", "warning", "info"].includes(finding.severity) ? finding.severity : "info"),
                  text: finding.severity}), " ",
      el("span", {class: "chip " + finding.severity, text: finding.code}), " ",
      finding.message || "", finding.count > 1 ? " (×" + finding.count + ")" : "",
      about.fix ? el("div", {class: "fix", text: "Fix: " + about.fix}) : null);
    if (about.anchor && !anchored.has(about.anchor)) { item.id = about.anchor; anchored.add(about.anchor); }
    return item;
  });
  if (!items.length) items.push(el("li", {class: "muted", text: "none"}));
  $("d-findings").replaceChildren(...items);
}

async function copySupport() {
  const text = $("d-support").textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch (error) {  // no clipboard API (an insecure origin): copy the selection the old way
    const range = document.createRange();
    range.selectNodeContents($("d-support"));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    document.execCommand("copy");
  }
  $("copied").textContent = "copied";
}

// --- wiring -------------------------------------------------------------------------------------

function filtersChanged() {
  view.filters = {q: $("q").value.trim(), state: $("state").value, code: $("code").value, host: $("host").value};
  view.offset = 0;
  refreshList();
}

$("filters").addEventListener("submit", (event) => { event.preventDefault(); filtersChanged(); });
$("q").addEventListener("input", filtersChanged);
for (const id of ["state", "code", "host"]) $(id).addEventListener("change", filtersChanged);
$("newer").addEventListener("click", () => { view.offset = Math.max(0, view.offset - view.limit); refreshList(); });
$("older").addEventListener("click", () => { view.offset += view.limit; refreshList(); });
$("copy").addEventListener("click", copySupport);
document.addEventListener("visibilitychange", () => { if (!document.hidden) { refreshList(); refreshDetail(); } });

const fromHash = new URLSearchParams(location.hash.slice(1)).get("job");
if (fromHash) select(fromHash);
refreshList();
