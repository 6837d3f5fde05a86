// The runs page (/): a filtered, sorted, paged table of runs (runtable.js: columns, metric
// value, groups, bulk actions, keyboard). Its state (where, sort, page, grouping, columns,
// value) lives in the query string, so reloading and the back button work; a state can be saved
// under a name (a view, kept in the store). While the page shows a running run, the page is
// fetched again every 2 s and changed rows are redrawn.

import { $, api, ApiError, fmtInt, html, notify, poll, startPage } from "./common.js";
import {
  fromView,
  pagerHtml,
  readTableState,
  RunTable,
  say,
  tableQuery,
  toolbarHtml,
  toView,
  writeTableState,
} from "./runtable.js";

const REFRESH_MS = 2000;
const METRICS_PLACEHOLDER = "comma list: valid/acc, train/loss";

const EXAMPLES = [
  "params.lr < 1e-3 and metrics.valid/acc > 0.9",
  "status in ('failed', 'crashed') or duration > 2h",
  "name ~ 'gru-*' and tags has 'baseline'",
  "max(metrics.valid/acc) >= 0.95 and started >= '2026-01-01'",
];

let state = readState();
let wanted = null; // the state being loaded: further changes build on it
let table = null;
let loadSeq = 0; // answers to older requests are dropped
let refresher = null;

/** The page state from the URL. */
function readState() {
  const q = new URLSearchParams(window.location.search);
  return { ...readTableState(q), where: q.get("where") || "", group: q.get("group") === "experiment" };
}

function stateQuery(s) {
  const q = new URLSearchParams();
  if (s.where) q.set("where", s.where);
  if (s.group) q.set("group", "experiment");
  writeTableState(s, q);
  const text = q.toString();
  return text ? `?${text}` : window.location.pathname;
}

const scope = (s = state) => ({ where: s.where, group: s.group ? "experiment" : "" });
const apiQuery = (s) => tableQuery(s, scope(s));

function layout() {
  $("#main").innerHTML = html`
    <div class="page-head">
      <h1>Runs</h1>
      <span id="total" class="muted"></span>
      <span class="spacer"></span>
      <div class="tool views-menu">
        <button type="button" id="views-button" class="btn" aria-expanded="false" aria-controls="views-panel">Views ▾</button>
        <div id="views-panel" class="tool-panel tool-panel-right" hidden>
          <form id="view-save" class="edit view-save" autocomplete="off">
            <input id="view-name" type="text" placeholder="save this view as…" aria-label="view name" maxlength="100" spellcheck="false">
            <button type="submit" class="btn btn-small btn-primary">Save</button>
          </form>
          <ul id="views-list" class="views-list"></ul>
        </div>
      </div>
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
            <p>Keys: <kbd>/</kbd> filter, <kbd>j</kbd>/<kbd>k</kbd> move, <kbd>Enter</kbd> open,
              <kbd>x</kbd> select; Tab reaches the column headers (Enter sorts).</p>
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
    ${toolbarHtml()}
    <div id="table" class="table-wrap"></div>
    ${pagerHtml()}`;
}

/** Put the state into the controls (after a load or a back/forward). */
function showState() {
  $("#where").value = state.where;
  $("#metric-cols").value = state.metrics.join(", ");
  $("#group").checked = state.group;
  $("#group").disabled = state.groupBy.length > 0;
}

/** Fetch the page for `next` state; on success it becomes the state (and the URL, if `push`). */
async function load(next, { push = true } = {}) {
  const seq = ++loadSeq;
  wanted = next;
  let page;
  try {
    page = await api("/api/runs", { query: apiQuery(next) });
  } catch (error) {
    if (seq !== loadSeq) return;
    wanted = null;
    showLoadError(error, next);
    return;
  }
  if (seq !== loadSeq) return;
  wanted = null;
  const changed = stateQuery(next) !== stateQuery(state);
  state = next;
  if (push && changed) history.pushState(null, "", stateQuery(state));
  hideFilterError();
  showState();
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

/** Draw the table and pager; with `full` false only changed rows are replaced. */
function draw(page, { full }) {
  table.draw(page, { full, empty: emptyMessage(page) });
  $("#metric-cols").placeholder = page.metrics.length ? page.metrics.join(", ") : METRICS_PLACEHOLDER;
  const runs = `${fmtInt(page.groups ? page.run_count : page.total)} run${page.total === 1 ? "" : "s"}`;
  $("#total").textContent = state.where ? `${runs} matching` : runs;
}

function emptyMessage(page) {
  if (page.total > 0) return "No runs on this page.";
  if (state.where) return "No runs match the filter.";
  return "No runs yet. Run `expbook demo` to make some.";
}

function showSelection(selected) {
  const button = $("#compare");
  button.textContent = `Compare (${selected.size})`;
  button.disabled = selected.size < 2;
  button.title = selected.size < 2 ? "select two or more runs" : "";
  $("#clear-selection").hidden = selected.size === 0;
}

/** While the page shows a running run, fetch it again every 2 s and redraw changed rows. */
function watchRunning(page) {
  const running = !page.groups && page.runs.some((run) => run.status === "running");
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

// --- saved views ------------------------------------------------------------------------------

async function drawViews() {
  const list = $("#views-list");
  let answer;
  try {
    answer = await api("/api/views");
  } catch (error) {
    list.innerHTML = html`<li class="filter-error">${error.message}</li>`.text;
    return;
  }
  list.innerHTML = answer.views.length
    ? answer.views
        .map(
          (view) => html`<li data-name="${view.name}"><button type="button" class="btn-link view-open">${view.name}</button>
            <button type="button" class="btn-icon edit view-delete" title="Delete this view" aria-label="delete view ${view.name}">✕</button></li>`.text,
        )
        .join("")
    : '<li class="muted small">No saved views yet.</li>';
  drawViews.views = new Map(answer.views.map((view) => [view.name, view.state]));
}

function closeViews() {
  $("#views-panel").hidden = true;
  $("#views-button").setAttribute("aria-expanded", "false");
}

function bindViews() {
  document.addEventListener("click", (event) => {
    if (event.target.isConnected && !event.target.closest(".views-menu")) closeViews();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeViews();
  });
  $("#views-button").addEventListener("click", () => {
    const panel = $("#views-panel");
    panel.hidden = !panel.hidden;
    $("#views-button").setAttribute("aria-expanded", String(!panel.hidden));
    if (!panel.hidden) drawViews();
  });
  $("#view-save").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#view-name").value.trim();
    if (!name) return;
    try {
      await api(`/api/views/${encodeURIComponent(name)}`, { method: "PUT", body: toView(state) });
    } catch (error) {
      notify(`Could not save the view: ${error.message}`);
      return;
    }
    $("#view-name").value = "";
    say(`Saved the view “${name}”.`);
    await drawViews();
  });
  $("#views-list").addEventListener("click", async (event) => {
    const item = event.target.closest("li[data-name]");
    if (!item) return;
    const name = item.dataset.name;
    if (event.target.closest(".view-open")) {
      closeViews();
      load(fromView(drawViews.views.get(name)));
    } else if (event.target.closest(".view-delete")) {
      if (!window.confirm(`Delete the saved view “${name}”?`)) return;
      try {
        await api(`/api/views/${encodeURIComponent(name)}`, { method: "DELETE" });
      } catch (error) {
        notify(`Could not delete the view: ${error.message}`);
        return;
      }
      await drawViews();
    }
  });
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
      .filter(Boolean);
    load({ ...state, metrics });
  });
  $("#metric-cols").addEventListener("keydown", (event) => {
    if (event.key === "Enter") event.target.dispatchEvent(new Event("change"));
  });
  $("#group").addEventListener("change", () => load({ ...state, group: $("#group").checked, page: 1 }));
  $("#compare").addEventListener("click", () => {
    window.location.href = table.compareUrl(); // with the table's grouping
  });
  $("#clear-selection").addEventListener("click", () => $("#bulk-clear").click());
  table = new RunTable($("#table"), {
    getState: () => wanted || state,
    change: (next) => load(next),
    scope: () => ({ where: state.where }),
    reload: () => load(state, { push: false }),
    onSelect: showSelection,
  });
  bindViews();
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
