// The experiments page (/experiments): every experiment with its run count, its best run by a
// metric you choose, what it is about and what was concluded; most recently changed first, or
// sorted by any column (the headers are buttons), and searchable by name and text.
//
// Everything comes from the API: GET /api/experiments (the rows) and GET /api/experiments-best
// (each experiment's best finished run by the metric, ranked as the experiment page ranks its
// runs). What a user would share lives in the address: ?q=TEXT&sort=-best&metric=valid/acc.

import {
  $,
  $$,
  api,
  experimentUrl,
  fmtInt,
  fmtNumber,
  html,
  notify,
  runUrl,
  showFatal,
  startPage,
  timeHtml,
  toNumber,
} from "./common.js";

/** The first `length` characters of markdown, as the text it shows: from the server's
 * rendering (`html`), so its markup goes and the text keeps every character (`batch_size`,
 * `lr * 2`, `run #3`). DOMParser runs no script and loads nothing. */
function plainText(html) {
  if (!html) return "";
  const text = new DOMParser().parseFromString(html, "text/html").body.textContent;
  return text.replace(/\s+/g, " ").trim();
}

function excerpt(text, length = 160) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

// The columns: what a header sorts by, and the order of a first click (a name A→Z, the most
// runs, the best value first, the newest update).
const COLUMNS = [
  { key: "name", label: "Experiment", first: "asc", value: (e) => e.name.toLowerCase() },
  { key: "runs", label: "Runs", first: "desc", num: true, value: (e) => e.run_count },
  // "best" sorts the best value first (lowest or highest, as the metric ranks), "-best" last
  {
    key: "best",
    label: "Best",
    first: "asc",
    num: true,
    value: (e) => (e.bestValue === null || best?.mode === "min" ? e.bestValue : -e.bestValue),
  },
  { key: "about", label: "About", first: "asc", value: (e) => e.about.toLowerCase() || null },
  { key: "conclusion", label: "Conclusion", first: "asc", value: (e) => e.conclusion.toLowerCase() || null },
  { key: "updated", label: "Updated", first: "desc", value: (e) => e.updated_at },
];
const DEFAULT_SORT = "-updated";

const state = { q: "", sort: DEFAULT_SORT, metric: "" };
let experiments = [];
let best = null; // the answer of /api/experiments-best

function readAddress() {
  const params = new URLSearchParams(location.search);
  state.q = params.get("q") ?? "";
  const sort = params.get("sort") ?? DEFAULT_SORT;
  state.sort = COLUMNS.some((c) => c.key === sort.replace(/^-/, "")) ? sort : DEFAULT_SORT;
  state.metric = params.get("metric") ?? "";
}

function writeAddress() {
  const params = new URLSearchParams();
  if (state.q) params.set("q", state.q);
  if (state.sort !== DEFAULT_SORT) params.set("sort", state.sort);
  if (state.metric) params.set("metric", state.metric);
  const search = params.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
}

/** Rows sorted by `state.sort`; an empty cell (no best run, no text) goes last either way. */
function sorted(rows) {
  const descending = state.sort.startsWith("-");
  const column = COLUMNS.find((c) => c.key === state.sort.replace(/^-/, ""));
  const keyed = rows.map((row) => ({ row, value: column.value(row) }));
  keyed.sort((a, b) => {
    const aEmpty = a.value === null || a.value === undefined || Number.isNaN(a.value);
    const bEmpty = b.value === null || b.value === undefined || Number.isNaN(b.value);
    if (aEmpty || bEmpty) return aEmpty - bEmpty || a.row.name.localeCompare(b.row.name);
    const order = a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
    return (descending ? -order : order) || a.row.name.localeCompare(b.row.name);
  });
  return keyed.map((item) => item.row);
}

function firstSort(column) {
  return column.first === "desc" ? `-${column.key}` : column.key;
}

function headerHtml(column) {
  const active = state.sort.replace(/^-/, "") === column.key;
  const descending = state.sort.startsWith("-");
  const arrow = active ? (descending ? " ▼" : " ▲") : "";
  const label = column.key === "best" && best?.metric ? `Best ${best.metric}` : column.label;
  const way = best?.mode === "min" ? "lowest" : "highest";
  const title =
    column.key === "best" && best?.metric
      ? `sort by the ${way} latest value of ${best.metric} among each experiment's finished runs`
      : `sort by ${column.label.toLowerCase()}`;
  const ariaSort = active ? (descending ? "descending" : "ascending") : "none";
  return html`<th class="${column.num ? "num" : ""}" aria-sort="${ariaSort}"><button
    type="button" class="sort-header" data-sort="${column.key}" title="${title}">${label}${arrow}</button></th>`;
}

function bestCell(experiment) {
  const found = experiment.best;
  if (!found) {
    const why = experiment.finished ? "no finished run has the metric" : "no finished run";
    return html`<td class="num best-cell"><span class="muted" title="${why}">—</span></td>`;
  }
  const value = fmtNumber(found.value);
  const link = html`<a href="${runUrl(found.number)}" title="#${found.number} ${found.name}">${value}</a>`;
  return html`<td class="num best-cell">${link} <span class="muted small">#${found.number}</span></td>`;
}

function rowHtml(experiment) {
  return html`<tr data-name="${experiment.name.toLowerCase()}" data-experiment="${experiment.name}">
    <td><a href="${experimentUrl(experiment.name)}"><b>${experiment.name}</b></a></td>
    <td class="num">${fmtInt(experiment.run_count)}</td>
    ${bestCell(experiment)}
    <td class="excerpt">${excerpt(experiment.about)}</td>
    <td class="excerpt">${excerpt(experiment.conclusion) || html`<span class="muted">—</span>`}</td>
    <td class="nowrap">${timeHtml(experiment.updated_at)}</td></tr>`;
}

function matches(experiment, text) {
  return !text || experiment.searchText.includes(text);
}

function drawTable() {
  const text = state.q.trim().toLowerCase();
  const shown = sorted(experiments).filter((e) => matches(e, text));
  $("#exp-table").innerHTML = html`<table class="list experiments-list">
    <thead><tr>${COLUMNS.map(headerHtml)}</tr></thead>
    <tbody>${shown.map(rowHtml)}</tbody></table>
    ${shown.length ? "" : html`<p class="empty">No experiment matches “${state.q}”.</p>`}`;
  const all = fmtInt(experiments.length);
  $("#exp-count").textContent = shown.length === experiments.length ? all : `${fmtInt(shown.length)} of ${all}`;
  for (const button of $$("button.sort-header")) {
    button.addEventListener("click", () => {
      const column = COLUMNS.find((c) => c.key === button.dataset.sort);
      const active = state.sort.replace(/^-/, "") === column.key;
      state.sort = active ? (state.sort.startsWith("-") ? column.key : `-${column.key}`) : firstSort(column);
      writeAddress();
      drawTable();
      $(`button.sort-header[data-sort="${column.key}"]`)?.focus(); // keep the keyboard's place
    });
  }
}

function metricOptions() {
  const keys = [...(best?.metrics ?? [])];
  if (best?.metric && !keys.includes(best.metric)) keys.unshift(best.metric);
  return keys.map((key) => html`<option value="${key}" ${key === best?.metric ? "selected" : ""}>${key}</option>`);
}

/** Join the best runs into the rows (one object per experiment). */
function merge(rows) {
  experiments = rows.map((row) => {
    const about = plainText(row.html.description) || plainText(row.html.hypothesis);
    const conclusion = plainText(row.html.conclusion);
    const found = best?.experiments?.[row.name] ?? { finished: 0, scored: 0, best: null };
    const value = found.best ? toNumber(found.best.value) : null;
    return {
      ...row,
      about,
      conclusion,
      best: found.best,
      finished: found.finished,
      bestValue: value,
      searchText: [row.name, row.description, row.hypothesis, about].join("\n").toLowerCase(),
    };
  });
}

let bestSeq = 0; // the latest /api/experiments-best request: an older, slower answer is dropped

/** GET /api/experiments-best for the chosen metric; false when a newer request took over. */
async function loadBest() {
  const seq = ++bestSeq;
  const answer = await api("/api/experiments-best", { query: { metric: state.metric || undefined } });
  if (seq !== bestSeq) return false;
  best = answer;
  return true;
}

function draw(rows) {
  merge(rows);
  $("#main").innerHTML = html`
    <div class="page-head">
      <h1>Experiments</h1><span class="muted" id="exp-count"></span>
      <span class="spacer"></span>
      <label class="best-metric-label">Best by
        <select id="best-metric" aria-label="the metric of the Best column">${metricOptions()}</select>
        <span class="muted small" id="best-mode"></span></label>
      <input type="search" id="find" placeholder="Find an experiment…" value="${state.q}"
        aria-label="find an experiment by name or description">
    </div>
    ${
      rows.length
        ? html`<div class="table-wrap" id="exp-table"></div>`
        : html`<p class="empty">No experiments yet. Start runs with <code>experiment="…"</code>
            (or <code>expbook run --experiment …</code>) to group them.</p>`
    }`;
  showMode();
  if (!rows.length) return;
  drawTable();
  $("#find").addEventListener("input", (event) => {
    state.q = event.target.value;
    writeAddress();
    drawTable();
  });
  $("#best-metric").addEventListener("change", async (event) => {
    state.metric = event.target.value;
    writeAddress();
    delete document.body.dataset.ready;
    try {
      if (!(await loadBest())) return; // a newer choice is under way: it draws
    } catch (error) {
      // the table keeps the metric it shows, and the select says which that is
      notify(error.message);
      state.metric = best?.metric ?? "";
      event.target.value = state.metric;
      writeAddress();
      document.body.dataset.ready = "true";
      return;
    }
    merge(rows);
    showMode();
    drawTable();
    document.body.dataset.ready = "true";
  });
}

function showMode() {
  $("#best-metric").disabled = !best?.metrics?.length;
  $("#best-mode").textContent = best?.metric ? (best.mode === "min" ? "lowest wins" : "highest wins") : "";
}

async function main() {
  readAddress();
  const started = startPage("experiments");
  const [rows] = await Promise.all([api("/api/experiments"), loadBest()]);
  await started;
  draw(rows);
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  console.error(error);
  showFatal(error);
});
