// An experiment's page (/experiments/NAME): its question (the name), description, hypothesis
// and conclusion (markdown, editable), its runs and the best of them by a chosen metric. The
// runs table is the runs page's (runtable.js: columns, value, groups, bulk actions, keyboard),
// 50 runs a page, its state in the address next to the ranking (?metric=&mode=).

import {
  $,
  api,
  experimentApi,
  experimentUrl,
  fmtInt,
  fmtNumber,
  html,
  notify,
  openEditor,
  poll,
  raw,
  readOnly,
  runUrl,
  showFatal,
  startPage,
  timeHtml,
} from "./common.js";
import { pagerHtml, readTableState, RunTable, tableQuery, toolbarHtml, writeTableState } from "./runtable.js";

const REFRESH_MS = 3000;
const FIELDS = [
  ["description", "Description", "What is this experiment about?"],
  ["hypothesis", "Hypothesis", "What do you expect, and why?"],
  ["conclusion", "Conclusion", "What did you learn?"],
];

let name = decodeURIComponent(window.location.pathname.replace(/^\/experiments\//, ""));
let data = null; // GET /api/experiments/NAME
let runs = null; // GET /api/runs?experiment=NAME: the page of runs shown
let table = null;
let tableState = readTableState(new URLSearchParams(window.location.search));
let loadSeq = 0;
let wanted = null; // the table state being loaded: further changes build on it
let refresher = null;

/** ?metric= and ?mode= of the page: the ranking the user chose. */
function ranking() {
  const q = new URLSearchParams(window.location.search);
  return { metric: q.get("metric") || "", mode: q.get("mode") || "" };
}

const fetchExperiment = () => api(experimentApi(name), { query: ranking() });
const fetchRuns = (s = tableState) => api("/api/runs", { query: tableQuery(s, { experiment: [name] }) });

/** The page's address for a table state (the ranking kept). */
function pageUrl(s) {
  const q = new URLSearchParams();
  const { metric, mode } = ranking();
  if (metric) q.set("metric", metric);
  if (mode) q.set("mode", mode);
  writeTableState(s, q);
  const text = q.toString();
  return experimentUrl(name) + (text ? `?${text}` : "");
}

/** Load the runs table for state `next`; on success it becomes the state and the address. */
async function loadRuns(next, { push = true } = {}) {
  const seq = ++loadSeq;
  wanted = next;
  let page;
  try {
    page = await fetchRuns(next);
  } catch (error) {
    if (seq !== loadSeq) return;
    wanted = null;
    notify(`Could not load the runs: ${error.message}`);
    return;
  }
  if (seq !== loadSeq) return;
  wanted = null;
  const changed = pageUrl(next) !== pageUrl(tableState);
  tableState = next;
  if (push && changed) history.pushState(null, "", pageUrl(tableState));
  runs = page;
  drawRuns();
  drawTitle();
  watchRunning();
}

/** A filter expression's quoted text. */
const quoted = (text) => `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;

function layout() {
  $("#main").innerHTML = html`
    <div class="page-head">
      <h1><span class="muted" style="font-weight:400">Experiment</span> <span id="exp-name" class="renamable" title="${readOnly() ? "" : "Click to rename"}"></span></h1>
      <button type="button" class="pencil edit" id="rename" title="Rename">✎</button>
      <span id="exp-count" class="muted"></span>
      <span class="spacer"></span>
      <a id="in-runs" class="btn">Open in runs table</a>
      <button type="button" id="compare" class="btn btn-primary" disabled>Compare (0)</button>
    </div>
    <div class="exp-fields">${FIELDS.map(
      ([field, label]) => html`<section class="card exp-field" id="field-${field}">
        <h2>${label}<span class="card-tools"><button type="button" class="btn btn-small edit edit-field" data-field="${field}">Edit</button></span></h2>
        <div class="field-body"></div></section>`,
    )}</div>
    <div class="best-line">
      <span>Best run by</span>
      <select id="mode" aria-label="ranking direction"><option value="max">max</option><option value="min">min</option></select>
      <select id="metric" aria-label="ranking metric"></select>
      <span id="best" class="best-run"></span>
    </div>
    ${toolbarHtml()}
    <div id="table" class="table-wrap"></div>
    ${pagerHtml()}`;
}

function drawTitle() {
  $("#exp-name").textContent = data.name;
  $("#exp-count").textContent = `${fmtInt(data.run_count)} run${data.run_count === 1 ? "" : "s"} · updated `;
  $("#exp-count").insertAdjacentHTML("beforeend", timeHtml(data.updated_at).text);
  const q = writeTableState({ ...tableState, page: 1 }, new URLSearchParams());
  q.set("where", `experiment = ${quoted(data.name)}`);
  $("#in-runs").href = `/?${q}`; // with the table's columns, value and grouping
  document.title = `${data.name} · expbook`;
}

function drawField(field) {
  const [, , placeholder] = FIELDS.find(([f]) => f === field);
  const body = $(`#field-${field} .field-body`);
  body.innerHTML = data[field]
    ? html`<div class="markdown">${raw(data.html[field])}</div>`.text
    : html`<p class="placeholder">${placeholder}</p>`.text;
}

function drawBest() {
  const metrics = data.metrics;
  $("#metric").innerHTML = metrics.map((key) => html`<option value="${key}">${key}</option>`.text).join("");
  $("#metric").value = data.metric ?? "";
  $("#mode").value = data.mode;
  const best = data.runs.find((run) => run.number === data.best); // its value by `metric`
  const value = best?.metrics[data.metric]?.value;
  const link = best && html`<a href="${runUrl(best.number)}"><b>#${best.number}</b> ${best.name}</a>`;
  const none = data.metric ? `no finished run has ${data.metric}` : "no metrics to rank by";
  $("#best").innerHTML = best
    ? html`best by ${data.mode} ${data.metric}: ${link} (${fmtNumber(value)})`.text
    : html`<span class="muted">${none}</span>`.text;
}

function drawRuns({ full = true } = {}) {
  if (!runs) return;
  table.draw(runs, { full, empty: runs.total ? "No runs on this page." : "No runs in this experiment yet." });
}

function showSelection(selected) {
  const button = $("#compare");
  button.textContent = `Compare (${selected.size})`;
  button.disabled = selected.size < 2;
}

function drawAll() {
  drawTitle();
  for (const [field] of FIELDS) if (!$(`#field-${field} .editor`)) drawField(field);
  drawBest();
  drawRuns();
  watchRunning();
}

// --- editing ----------------------------------------------------------------------------------

/** Apply an edited experiment (PATCH's answer) to the page's data. */
function applyChange(record) {
  const renamed = record.name !== data.name;
  Object.assign(data, record);
  if (renamed) {
    name = record.name;
    history.replaceState(null, "", experimentUrl(name) + window.location.search);
  }
}

function editField(field) {
  const body = $(`#field-${field} .field-body`);
  openEditor(body, {
    text: data[field] ?? "",
    multiline: true,
    placeholder: FIELDS.find(([f]) => f === field)[2],
    onSave: async (text) => {
      const value = text.trim() ? text : null;
      applyChange(await api(experimentApi(name), { method: "PATCH", body: { [field]: value } }));
    },
    onDone: () => drawField(field),
  });
}

function rename() {
  $("#rename").hidden = true;
  openEditor($("#exp-name"), {
    text: data.name,
    onSave: async (text) => {
      applyChange(await api(experimentApi(name), { method: "PATCH", body: { name: text.trim() } }));
    },
    onDone: () => {
      $("#rename").hidden = false;
      drawTitle();
      drawRuns(); // the runs' experiment links changed
    },
  });
}

// --- ranking and refresh ----------------------------------------------------------------------

let rankingSeq = 0;

/** A new ranking metric (its natural direction: min for a loss) or direction. */
async function changeRanking(event) {
  const q = new URLSearchParams(window.location.search);
  q.set("metric", $("#metric").value);
  if (event.target.id === "mode") q.set("mode", $("#mode").value);
  else q.delete("mode");
  history.replaceState(null, "", `${window.location.pathname}?${q}`);
  const seq = ++rankingSeq;
  let fresh;
  try {
    fresh = await fetchExperiment();
  } catch (error) {
    notify(`Could not rank by ${$("#metric").value}: ${error.message}`);
    return;
  }
  if (seq !== rankingSeq) return; // the user changed it again meanwhile
  data = fresh;
  drawBest();
  drawRuns();
}

function watchRunning() {
  const running = runs?.runs?.some((run) => run.status === "running");
  if (running && !refresher) refresher = poll(refresh, REFRESH_MS);
  else if (!running && refresher) {
    refresher.stop();
    refresher = null;
  }
}

async function refresh() {
  const [seq, runSeq] = [rankingSeq, loadSeq];
  const [fresh, page] = await Promise.all([fetchExperiment(), fetchRuns()]);
  if (seq !== rankingSeq || runSeq !== loadSeq) return;
  data = fresh;
  runs = page;
  drawBest();
  drawRuns({ full: false });
  watchRunning();
}

function bind() {
  $("#main").addEventListener("click", (event) => {
    const button = event.target.closest(".edit-field");
    if (button && !$(`#field-${button.dataset.field} .editor`)) editField(button.dataset.field);
  });
  $("#rename").addEventListener("click", rename);
  $("#exp-name").addEventListener("click", () => {
    if (!readOnly() && !$("#exp-name .editor")) rename();
  });
  $("#metric").addEventListener("change", changeRanking);
  $("#mode").addEventListener("change", changeRanking);
  $("#compare").addEventListener("click", () => {
    window.location.href = table.compareUrl();
  });
  table = new RunTable($("#table"), {
    getState: () => wanted || tableState,
    change: (next) => loadRuns(next),
    scope: () => ({ experiment: [name] }),
    reload: () => loadRuns(tableState, { push: false }),
    onSelect: showSelection,
    best: () => data.best,
    showExperiment: () => false,
  });
  window.addEventListener("popstate", () => {
    tableState = readTableState(new URLSearchParams(window.location.search));
    loadRuns(tableState, { push: false });
  });
}

async function main() {
  const started = startPage("experiments"); // the header's request goes with the page's
  try {
    [data, runs] = await Promise.all([fetchExperiment(), fetchRuns()]);
  } catch (error) {
    await started;
    showFatal(error);
    return;
  }
  await started; // (read-only hides the edit controls)
  layout();
  bind();
  drawAll();
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  console.error(error);
  showFatal(error);
});
