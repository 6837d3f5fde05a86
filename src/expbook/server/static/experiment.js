// An experiment's page (/experiments/NAME): its question (the name), description, hypothesis
// and conclusion (markdown, editable), its runs and the best of them by a chosen metric.

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
import { bindTable, compareUrl, drawTable, headerKey, updateRows } from "./runtable.js";

const REFRESH_MS = 3000;
const FIELDS = [
  ["description", "Description", "What is this experiment about?"],
  ["hypothesis", "Hypothesis", "What do you expect, and why?"],
  ["conclusion", "Conclusion", "What did you learn?"],
];

let name = decodeURIComponent(window.location.pathname.replace(/^\/experiments\//, ""));
let data = null; // GET /api/experiments/NAME
const selected = new Set();
let shownHeader = null;
let refresher = null;

/** ?metric= and ?mode= of the page: the ranking the user chose. */
function ranking() {
  const q = new URLSearchParams(window.location.search);
  return { metric: q.get("metric") || "", mode: q.get("mode") || "" };
}

const fetchExperiment = () => api(experimentApi(name), { query: ranking() });

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
    <div id="table" class="table-wrap"></div>`;
}

function drawTitle() {
  $("#exp-name").textContent = data.name;
  $("#exp-count").textContent = `${fmtInt(data.run_count)} run${data.run_count === 1 ? "" : "s"} · updated `;
  $("#exp-count").insertAdjacentHTML("beforeend", timeHtml(data.updated_at).text);
  $("#in-runs").href = `/?where=${encodeURIComponent(`experiment = ${quoted(data.name)}`)}`;
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
  const best = data.runs.find((run) => run.number === data.best);
  const value = best?.metrics[data.metric]?.value;
  const link = best && html`<a href="${runUrl(best.number)}"><b>#${best.number}</b> ${best.name}</a>`;
  const none = data.metric ? `no finished run has ${data.metric}` : "no metrics to rank by";
  $("#best").innerHTML = best
    ? html`best by ${data.mode} ${data.metric}: ${link} (${fmtNumber(value)})`.text
    : html`<span class="muted">${none}</span>`.text;
}

function tableOptions() {
  return { best: data.best, selected, sortable: false, selectAll: true, showExperiment: false, group: false };
}

function drawRuns({ full = true } = {}) {
  const container = $("#table");
  const page = { runs: data.runs, params: data.params, metrics: data.metrics };
  if (!data.runs.length) {
    container.innerHTML = html`<p class="empty">No runs in this experiment yet.</p>`.text;
    shownHeader = null;
    return;
  }
  const options = tableOptions();
  const header = headerKey(page, options);
  if (full || header !== shownHeader || !updateRows(container, page, options)) {
    drawTable(container, page, options);
    shownHeader = header;
  }
}

function showSelection() {
  const button = $("#compare");
  button.textContent = `Compare (${selected.size})`;
  button.disabled = selected.size < 2;
}

function drawAll() {
  drawTitle();
  for (const [field] of FIELDS) if (!$(`#field-${field} .editor`)) drawField(field);
  drawBest();
  drawRuns();
  showSelection();
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
  const running = data.runs.some((run) => run.status === "running");
  if (running && !refresher) refresher = poll(refresh, REFRESH_MS);
  else if (!running && refresher) {
    refresher.stop();
    refresher = null;
  }
}

async function refresh() {
  const seq = rankingSeq;
  const fresh = await fetchExperiment();
  if (seq !== rankingSeq) return;
  data = fresh;
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
    window.location.href = compareUrl(selected);
  });
  bindTable($("#table"), { selected, onSelect: showSelection });
}

async function main() {
  const started = startPage("experiments"); // the header's request goes with the page's
  try {
    data = await fetchExperiment();
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
