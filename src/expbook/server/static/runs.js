// The runs page (/): a filtered, sorted, paged table of runs. Its state (where, sort, page,
// group, metrics) lives in the query string, so reloading and the back button work. While the
// page shows a running run, the page is fetched again every 2 s and changed rows are redrawn.

import { $, api, ApiError, fmtInt, html, poll, startPage } from "./common.js";
import { bindTable, compareUrl, drawTable, headerKey, updateRows } from "./runtable.js";

const LIMIT = 50;
const REFRESH_MS = 2000;
const METRICS_PLACEHOLDER = "comma list: valid/acc, train/loss";

const EXAMPLES = [
  "params.lr < 1e-3 and metrics.valid/acc > 0.9",
  "status in ('failed', 'crashed') or duration > 2h",
  "name ~ 'gru-*' and tags has 'baseline'",
  "max(metrics.valid/acc) >= 0.95 and started >= '2026-01-01'",
];

let state = readState();
const selected = new Set();
let shownHeader = null; // headerKey of the drawn table
let loadSeq = 0; // answers to older requests are dropped
let refresher = null;

/** The page state from the URL. */
function readState() {
  const q = new URLSearchParams(window.location.search);
  return {
    where: q.get("where") || "",
    sort: q.get("sort") || "",
    page: Math.max(1, parseInt(q.get("page") || "1", 10) || 1),
    group: q.get("group") === "experiment",
    metrics: q.get("metrics") || "",
  };
}

function stateQuery(s) {
  const q = new URLSearchParams();
  if (s.where) q.set("where", s.where);
  if (s.sort) q.set("sort", s.sort);
  if (s.page > 1) q.set("page", String(s.page));
  if (s.group) q.set("group", "experiment");
  if (s.metrics) q.set("metrics", s.metrics);
  const text = q.toString();
  return text ? `?${text}` : window.location.pathname;
}

function apiQuery(s) {
  return {
    where: s.where,
    sort: s.sort,
    limit: LIMIT,
    offset: (s.page - 1) * LIMIT,
    group: s.group ? "experiment" : "",
    metrics: s.metrics,
  };
}

function layout() {
  $("#main").innerHTML = html`
    <div class="page-head">
      <h1>Runs</h1>
      <span id="total" class="muted"></span>
      <span class="spacer"></span>
      <button type="button" id="compare" class="btn btn-primary" disabled>Compare (0)</button>
      <button type="button" id="clear-selection" class="btn btn-link" hidden>clear selection</button>
    </div>
    <form id="filter" class="filter" autocomplete="off">
      <div class="filter-row">
        <input id="where" type="search" spellcheck="false" aria-label="filter expression"
          placeholder="Filter: params.lr < 1e-3 and metrics.valid/acc > 0.9   (press / to focus)">
        <button type="submit" class="btn">Filter</button>
        <details class="help"><summary title="filter language">?</summary>
          <div class="help-body">
            <p>Fields: <code>params.KEY</code>, <code>metrics.KEY</code>, <code>max(metrics.KEY)</code>,
              <code>tags has 'x'</code>, <code>name</code>, <code>status</code>, <code>experiment</code>,
              <code>duration</code>, <code>started</code>, <code>commit</code>…
              Operators: <code>= != &lt; &lt;= &gt; &gt;= ~ in</code>,
              <code>is null</code>, <code>and or not</code>. Click an example:</p>
            <ul>${EXAMPLES.map((e) => html`<li><code class="example">${e}</code></li>`)}</ul>
          </div>
        </details>
      </div>
      <div id="filter-error" class="filter-error" hidden></div>
    </form>
    <div class="options">
      <label>Metric columns <input id="metric-cols" type="text" spellcheck="false" size="40"
        placeholder="${METRICS_PLACEHOLDER}"></label>
      <label class="check-label"><input id="group" type="checkbox"> Group by experiment</label>
    </div>
    <div id="table" class="table-wrap"></div>
    <div class="pager">
      <button type="button" id="prev" class="btn">‹ Prev</button>
      <span id="range" class="muted"></span>
      <button type="button" id="next" class="btn">Next ›</button>
    </div>`;
}

/** Put the state into the controls (after a load or a back/forward). */
function showState() {
  $("#where").value = state.where;
  $("#metric-cols").value = state.metrics;
  $("#group").checked = state.group;
}

/** Fetch the page for `next` state; on success it becomes the state (and the URL, if `push`). */
async function load(next, { push = true } = {}) {
  const seq = ++loadSeq;
  let page;
  try {
    page = await api("/api/runs", { query: apiQuery(next) });
  } catch (error) {
    if (seq !== loadSeq) return;
    showLoadError(error, next);
    return;
  }
  if (seq !== loadSeq) return;
  const changed = stateQuery(next) !== stateQuery(state);
  state = next;
  if (push && changed) history.pushState(null, "", stateQuery(state));
  hideFilterError();
  draw(page, { full: true });
  watchRunning(page);
}

/** A refused filter keeps the old table and shows why, with a caret under the position. */
function showLoadError(error, attempted) {
  const box = $("#filter-error");
  const detail = error instanceof ApiError && typeof error.detail === "object" ? error.detail : null;
  const position = detail?.position;
  if (Number.isInteger(position) && attempted.where) {
    const text = detail.text ?? attempted.where;
    const at = Math.max(0, Math.min(position, text.length));
    const [before, char, after] = [text.slice(0, at), text.slice(at, at + 1) || " ", text.slice(at + 1)];
    const marked = html`${before}<mark>${char}</mark>${after}`;
    box.innerHTML = html`<div class="reason">${detail.reason || detail.message} at column ${at + 1}</div>
      <pre class="where-text">${marked}\n${" ".repeat(at)}^</pre>`;
    const input = $("#where");
    if (document.activeElement === input) input.setSelectionRange(at, at);
  } else {
    box.innerHTML = html`<div class="reason">${detail?.message ?? error.message}</div>`;
  }
  box.hidden = false;
  if (!$("#table").firstChild) $("#table").innerHTML = '<p class="empty">No runs to show.</p>';
}

function hideFilterError() {
  $("#filter-error").hidden = true;
  $("#filter-error").textContent = "";
}

function tableOptions() {
  return {
    sort: state.sort,
    group: state.group,
    selected,
    sortable: true,
    selectAll: true,
    showExperiment: !state.group, // grouped, the group rows say it
  };
}

/** Draw the table and pager; with `full` false only changed rows are replaced. */
function draw(page, { full }) {
  const container = $("#table");
  const options = tableOptions();
  const header = headerKey(page, options);
  if (page.runs.length === 0) {
    container.innerHTML = html`<p class="empty">${emptyMessage(page)}</p>`.text;
    shownHeader = null;
  } else if (full || header !== shownHeader || !updateRows(container, page, options)) {
    drawTable(container, page, options);
    shownHeader = header;
  }
  $("#metric-cols").placeholder = page.metrics.length ? page.metrics.join(", ") : METRICS_PLACEHOLDER;
  drawPager(page);
  showSelection();
}

function emptyMessage(page) {
  if (page.total > 0) return "No runs on this page.";
  if (state.where) return "No runs match the filter.";
  return "No runs yet. Run `expbook demo` to make some.";
}

function drawPager(page) {
  const first = page.total ? page.offset + 1 : 0;
  const last = page.offset + page.runs.length;
  $("#range").textContent = page.total ? `${fmtInt(first)}–${fmtInt(last)} of ${fmtInt(page.total)}` : "";
  const runs = `${fmtInt(page.total)} run${page.total === 1 ? "" : "s"}`;
  $("#total").textContent = state.where ? `${runs} matching` : runs;
  $("#prev").disabled = page.offset === 0;
  $("#next").disabled = last >= page.total;
}

function showSelection() {
  const button = $("#compare");
  button.textContent = `Compare (${selected.size})`;
  button.disabled = selected.size < 2;
  button.title = selected.size < 2 ? "select two or more runs" : "";
  $("#clear-selection").hidden = selected.size === 0;
}

/** While the page shows a running run, fetch it again every 2 s and redraw changed rows. */
function watchRunning(page) {
  const running = page.runs.some((run) => run.status === "running");
  if (running && !refresher) {
    refresher = poll(refresh, REFRESH_MS);
  } else if (!running && refresher) {
    refresher.stop();
    refresher = null;
  }
}

async function refresh() {
  const seq = loadSeq;
  const page = await api("/api/runs", { query: apiQuery(state) });
  if (seq !== loadSeq) return; // the user asked for something else meanwhile
  draw(page, { full: false });
  watchRunning(page);
}

function bindControls() {
  $("#filter").addEventListener("submit", (event) => {
    event.preventDefault();
    load({ ...state, where: $("#where").value.trim(), page: 1 });
  });
  $("#where").addEventListener("search", () => {
    // the clear (×) button of a search input
    if ($("#where").value === "" && state.where) load({ ...state, where: "", page: 1 });
  });
  $("#filter").addEventListener("click", (event) => {
    const example = event.target.closest(".example");
    if (!example) return;
    $("#where").value = example.textContent;
    $("#filter details").open = false;
    load({ ...state, where: example.textContent, page: 1 });
  });
  $("#metric-cols").addEventListener("change", () => {
    const metrics = $("#metric-cols")
      .value.split(",")
      .map((key) => key.trim())
      .filter(Boolean)
      .join(",");
    load({ ...state, metrics });
  });
  $("#metric-cols").addEventListener("keydown", (event) => {
    if (event.key === "Enter") event.target.dispatchEvent(new Event("change"));
  });
  $("#group").addEventListener("change", () => load({ ...state, group: $("#group").checked, page: 1 }));
  $("#prev").addEventListener("click", () => load({ ...state, page: Math.max(1, state.page - 1) }));
  $("#next").addEventListener("click", () => load({ ...state, page: state.page + 1 }));
  $("#compare").addEventListener("click", () => {
    window.location.href = compareUrl(selected);
  });
  $("#clear-selection").addEventListener("click", () => {
    selected.clear();
    load(state, { push: false });
  });
  bindTable($("#table"), {
    selected,
    onSelect: showSelection,
    onSort: (sort) => load({ ...state, sort, page: 1 }),
    getSort: () => state.sort,
  });
  window.addEventListener("popstate", () => {
    const next = readState();
    state = next;
    showState();
    load(next, { push: false });
  });
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select");
    if (event.key === "/" && !typing) {
      event.preventDefault();
      $("#where").focus();
    }
  });
}

async function main() {
  await startPage("runs");
  layout();
  showState();
  bindControls();
  await load(state, { push: false });
  document.title = "Runs · expbook";
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  $("#main").innerHTML = html`<div class="alert">${error.message}</div>`;
  console.error(error);
});
