// The runs table, shared by the runs page and an experiment's page: one row per run with its
// status, times, the varying (or chosen) params and metrics, a checkbox to select it, and group
// rows (per experiment, or per configuration with n, mean ± std and the 95 % CI that the API
// computed). `RunTable` adds what both pages offer around it: the column chooser (choose, order,
// pin, hide), the metric value (last / min / max / best), group by params, the bulk-action bar,
// the download links, the pager and the keyboard (j/k move, Enter opens, x selects).
//
// The table's state (sort, page, columns, value, grouping) lives in the page's address; the
// page owns it and loads the data; `RunTable` draws it and asks the page for changes.

import {
  $,
  $$,
  api,
  badge,
  experimentUrl,
  field,
  fmtDuration,
  fmtInt,
  fmtNumber,
  fmtParam,
  html,
  notify,
  queryString,
  runUrl,
  timeHtml,
  toNumber,
} from "./common.js";
import { intervalText, levelText, meanParts } from "./groupcharts.js";

export const LIMIT = 50;
export const VALUES = ["last", "min", "max", "best"];
export const ALL_BUT_SEEDS = "*";
const HIDEABLE = ["status", "experiment", "started", "duration"];
const MEMBERS_LIMIT = 500; // runs shown under an expanded group (their numbers go in the URL)

/** The fixed columns: [label, sort field, first-click direction, css class]. */
const FIXED = [
  ["#", "number", "desc", "num"],
  ["Name", "name", "asc", ""],
  ["Status", "status", "asc", ""],
  ["Experiment", "experiment", "asc", ""],
  ["Started", "started", "desc", ""],
  ["Duration", "duration", "desc", "num"],
];

// --- state ------------------------------------------------------------------------------------

const csv = (text) =>
  (text || "")
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);

/** The table's part of a page's state, from its query string. */
export function readTableState(q) {
  const value = q.get("value");
  return {
    sort: q.get("sort") || "",
    page: Math.max(1, parseInt(q.get("page") || "1", 10) || 1),
    params: csv(q.get("params")),
    metrics: csv(q.get("metrics")),
    pin: csv(q.get("pin")),
    hide: csv(q.get("hide")).filter((name) => HIDEABLE.includes(name)),
    value: VALUES.includes(value) ? value : "last",
    groupBy: q.getAll("group_by").filter(Boolean),
  };
}

/** Put the table's state into a URLSearchParams (defaults left out). */
export function writeTableState(s, q) {
  if (s.sort) q.set("sort", s.sort);
  if (s.page > 1) q.set("page", String(s.page));
  if (s.params.length) q.set("params", s.params.join(","));
  if (s.metrics.length) q.set("metrics", s.metrics.join(","));
  if (s.pin.length) q.set("pin", s.pin.join(","));
  if (s.hide.length) q.set("hide", s.hide.join(","));
  if (s.value !== "last") q.set("value", s.value);
  for (const key of s.groupBy) q.append("group_by", key);
  return q;
}

/** The GET /api/runs query for a table state within `scope` ({where, experiment, group}). */
export function tableQuery(s, scope = {}) {
  return {
    ...scope,
    group: s.groupBy.length ? "" : scope.group,
    sort: s.sort,
    limit: LIMIT,
    offset: (s.page - 1) * LIMIT,
    params: s.params.join(","),
    metrics: s.metrics.join(","),
    value: s.value === "last" ? "" : s.value,
    group_by: s.groupBy,
  };
}

/** A saved view's state (GET /api/views) as a table state, and back. */
export function fromView(view) {
  return {
    where: view.where || "",
    sort: view.sort || "",
    page: 1,
    params: view.params || [],
    metrics: view.metrics || [],
    pin: view.pin || [],
    hide: view.hide || [],
    value: view.value || "last",
    groupBy: view.group_by || [],
    group: view.group === "experiment",
  };
}

export function toView(s) {
  return {
    where: s.where || "",
    sort: s.sort,
    params: s.params,
    metrics: s.metrics,
    pin: s.pin,
    hide: s.hide,
    value: s.value,
    group_by: s.groupBy,
    group: s.group ? "experiment" : null,
  };
}

// --- sorting ----------------------------------------------------------------------------------

/** The first term of a sort expression: {field, desc}. The default order is newest first. */
export function activeSort(sort) {
  const first = (sort || "-number").split(",")[0].trim();
  let desc = false;
  let name = first;
  if (name.startsWith("-")) [desc, name] = [true, name.slice(1)];
  else if (name.startsWith("+")) name = name.slice(1);
  const word = name.match(/\s+(asc|desc)$/i);
  if (word) [desc, name] = [word[1].toLowerCase() === "desc", name.slice(0, word.index)];
  return { field: name.trim(), desc };
}

/** The sort expression after a click on the header of `column` (a second click reverses). */
export function nextSort(sort, column, firstDirection = "asc") {
  const current = activeSort(sort);
  let desc = firstDirection === "desc";
  if (current.field === column) desc = !current.desc;
  return desc ? `-${column}` : column;
}


// --- columns ----------------------------------------------------------------------------------

/** The columns of a page: number, name, the pinned ones, the other run columns, params, metrics. */
function columns(page, options) {
  const hide = new Set(options.hide || []);
  const grouped = Boolean(page.groups);
  const fixed = FIXED.filter(([, name]) => {
    if (name === "number" || name === "name") return true;
    if (grouped || hide.has(name)) return false;
    return options.showExperiment || name !== "experiment";
  }).map(([label, sort, first, cls]) => ({ id: sort, label, sort, first, cls, kind: "fixed" }));
  const params = page.params.map((key) => ({
    id: `params.${key}`,
    label: key,
    key,
    sort: field("params", key),
    first: "asc",
    cls: "param",
    kind: "param",
    list: (page.lists || []).find((list) => list.key === key), // a list of words, element-wise
  }));
  const metrics = page.metrics.map((key) => ({
    id: `metrics.${key}`,
    label: key,
    key,
    sort: field("metrics", key), // the API sorts it by the value shown
    first: "desc",
    cls: "num metric",
    kind: "metric",
  }));
  const pins = options.pin || [];
  const pinned = [...params, ...metrics]
    .filter((c) => pins.includes(c.id))
    .sort((a, b) => pins.indexOf(a.id) - pins.indexOf(b.id));
  for (const c of pinned) c.pinned = true;
  const rest = (list) => list.filter((c) => !c.pinned);
  return [...fixed.slice(0, 2), ...pinned, ...fixed.slice(2), ...rest(params), ...rest(metrics)];
}

function headerHtml(cols, { sort, sortable, selectAll, value }) {
  const active = activeSort(sort);
  const params = cols.filter((c) => c.kind === "param" && !c.pinned).length;
  const metrics = cols.filter((c) => c.kind === "metric" && !c.pinned).length;
  const before = cols.length - params - metrics;
  const valueNote = value && value !== "last" ? ` (${value})` : "";
  const groups =
    params || metrics
      ? html`<tr class="col-groups"><th colspan="${before + 1}"></th>${params
          ? html`<th colspan="${params}" class="group-params">params</th>`
          : ""}${metrics ? html`<th colspan="${metrics}" class="group-metrics">metrics${valueNote}</th>` : ""}</tr>`
      : "";
  const cells = cols.map((c) => {
    const arrow = sortable && c.sort === active.field ? (active.desc ? " ▼" : " ▲") : "";
    const classes = [c.cls, sortable ? "sortable" : "", arrow ? "sorted" : "", c.pinned ? "pinned" : ""];
    const attrs = html` data-col="${c.id}"${
      sortable ? html` data-sort="${c.sort}" data-first="${c.first}" aria-sort="${
        arrow ? (active.desc ? "descending" : "ascending") : "none"
      }"` : ""
    }`;
    const common = c.list?.common.length
      ? html`<div class="list-common" title="every run shown has these">all: ${c.list.common.join(", ")}</div>`
      : "";
    const pin = c.pinned ? html`<span class="pin-mark" title="pinned">pinned</span>` : "";
    const label = sortable
      ? html`<button type="button" class="sort-button" title="Sort by ${c.sort}">${pin}${c.label}<span class="arrow">${arrow}</span></button>`
      : html`${pin}${c.label}`;
    return html`<th class="${classes.join(" ").trim()}"${attrs}>${label}${common}</th>`;
  });
  const check = selectAll
    ? html`<th class="check"><input type="checkbox" class="select-all" title="Select all on this page" aria-label="select all on this page"></th>`
    : html`<th class="check"></th>`;
  return html`<thead>${groups}<tr>${check}${cells}</tr></thead>`;
}

/** The elements of a list param that vary among the runs (the others are said once in the
 * header), highlighted: `+ml_loader_frequency_pooled +ml_target_folded`. */
export function elementsHtml(elements) {
  if (!elements.length) return html`<span class="muted">—</span>`;
  return html`<span class="elements">${elements.map((e) => html`<span class="element">+${e}</span>`)}</span>`;
}

function cellHtml(run, col, best) {
  switch (col.sort) {
    case "number":
      return html`<td class="num"><a href="${runUrl(run.number)}">${run.number}</a>${
        best === run.number ? html`<span class="star" title="best run">★</span>` : ""
      }</td>`;
    case "name":
      return html`<td class="name"><a href="${runUrl(run.number)}">${run.name}</a>${run.tags.map(
        (tag) => html`<span class="tag">${tag}</span>`,
      )}${run.kind !== "train" ? html`<span class="kind">${run.kind}</span>` : ""}</td>`;
    case "status":
      return html`<td>${badge(run.status)}</td>`;
    case "experiment":
      return run.experiment
        ? html`<td class="ellipsis" title="${run.experiment}"><a href="${experimentUrl(run.experiment)}">${run.experiment}</a></td>`
        : html`<td class="muted">—</td>`;
    case "started":
      return html`<td class="nowrap">${timeHtml(run.started_at)}</td>`;
    case "duration":
      return html`<td class="num">${fmtDuration(run.duration)}</td>`;
  }
  if (col.kind === "param" && col.list && col.key in run.params) {
    return html`<td class="param">${elementsHtml(col.list.runs[String(run.number)] || [])}</td>`;
  }
  if (col.kind === "param") {
    const has = col.key in run.params;
    const text = fmtParam(run.params[col.key]);
    return has
      ? html`<td class="param ellipsis" title="${text}">${text}</td>`
      : html`<td class="param muted">—</td>`;
  }
  const cell = run.metrics[col.key];
  if (!cell) return html`<td class="num muted">—</td>`;
  const value = toNumber(cell.value);
  const odd = value !== null && !Number.isFinite(value);
  return html`<td class="num${odd ? " nonfinite" : ""}" title="${String(cell.value)}">${fmtNumber(
    value,
  )}${cell.unit ? html`<span class="unit"> ${cell.unit}</span>` : ""}</td>`;
}

function runRowHtml(run, cols, options, extra = "") {
  const checked = options.selected?.has(run.number);
  const classes = [
    `status-${run.status}`,
    options.best === run.number ? "best" : "",
    checked ? "selected" : "",
    extra,
  ];
  const box = html`<input type="checkbox" class="select" value="${run.number}"
    aria-label="select run ${run.number}"${checked ? " checked" : ""}>`;
  return html`<tr class="${classes.join(" ").replace(/\s+/g, " ").trim()}" data-key="r:${run.number}"
    data-number="${run.number}"><td class="check">${box}</td>${cols.map((col) =>
    cellHtml(run, col, options.best),
  )}</tr>`.text;
}

/** The rows of a page as [{key, html}]: run rows (`r:N`) and, grouped, experiment rows (`g:NAME`). */
export function rows(page, options) {
  const cols = columns(page, options);
  const out = [];
  let group;
  for (const run of page.runs) {
    if (options.group && run.experiment !== group) {
      group = run.experiment;
      const count = page.runs.filter((r) => r.experiment === group).length;
      const title = group
        ? html`<a href="${experimentUrl(group)}">${group}</a>`
        : html`<span class="muted">no experiment</span>`;
      const key = `g:${group ?? ""}`;
      const note = `${count} run${count === 1 ? "" : "s"} on this page`;
      out.push({
        key,
        html: html`<tr class="group-row" data-key="${key}"><td colspan="${cols.length + 1}">${title}
          <span class="muted small">${note}</span></td></tr>`.text,
      });
    }
    out.push({ key: `r:${run.number}`, html: runRowHtml(run, cols, options) });
  }
  return out;
}

// --- groups over params -----------------------------------------------------------------------

/** A group's identity on the page: its params, canonically. */
const groupKey = (group) => JSON.stringify(Object.entries(group.params).sort());

/** A group's cell of a metric: mean ± std and the CI at the API's `confidence` (the texts of
 * the compare page's groups table, groupcharts.js). */
function statHtml(stat, confidence) {
  const parts = meanParts(stat);
  if (!parts) return html`<td class="num muted">—</td>`;
  if (stat.n < 2 || !stat.ci) {
    return html`<td class="num stat" data-n="${stat.n}" data-mean="${stat.mean}"><span class="mean">${parts.mean}</span>
      <div class="ci muted">n = ${stat.n}</div></td>`;
  }
  const [low, high] = stat.ci;
  const level = levelText(confidence);
  return html`<td class="num stat" data-n="${stat.n}" data-mean="${stat.mean}" data-std="${stat.std}" data-ci="${low},${high}" title="mean ± std over ${stat.n} runs; ${level} CI of the mean [${low}, ${high}]"><span class="mean">${parts.mean}</span> <span class="std">± ${parts.std}</span><div class="ci">${level} CI ${intervalText(stat.ci)}</div></td>`;
}

function groupRowHtml(group, index, cols, options, expanded) {
  const numbers = group.runs.join(",");
  const all = group.runs.length > 0 && group.runs.every((n) => options.selected?.has(n));
  const noise = group.noise_unknown
    ? html`<span class="noise-unknown" title="a group of one run: its run-to-run noise is unknown; repeat it with --repeat">noise unknown</span>`
    : "";
  const cells = cols.map((col) => {
    if (col.sort === "number") {
      return html`<td class="num"><button type="button" class="expand" aria-expanded="${expanded}" title="${
        expanded ? "Hide" : "Show"
      } its runs">${expanded ? "▾" : "▸"}</button></td>`;
    }
    if (col.sort === "name") {
      return html`<td class="name"><span class="group-n">n = ${group.n}</span> ${noise}</td>`;
    }
    if (col.kind === "param") {
      const has = col.key in group.params;
      const text = fmtParam(group.params[col.key]);
      return has
        ? html`<td class="param ellipsis" title="${text}">${text}</td>`
        : html`<td class="param muted">—</td>`;
    }
    return statHtml(group.metrics[col.key], options.confidence);
  });
  const box = html`<input type="checkbox" class="select-group" value="${numbers}"
    aria-label="select the ${group.n} runs of this group"${all ? " checked" : ""}>`;
  return html`<tr class="stat-group${group.noise_unknown ? " noise" : ""}" data-key="s:${index}"
    data-group="${index}" data-runs="${numbers}"><td class="check">${box}</td>${cells}</tr>`.text;
}

// --- the table --------------------------------------------------------------------------------

/** The signature of a page's header: when it changes, the whole table is drawn again. */
export const headerKey = (page, options) =>
  JSON.stringify([
    page.params,
    page.metrics,
    options.sort,
    options.showExperiment,
    options.group,
    options.pin,
    options.hide,
    options.value,
    Boolean(page.groups),
  ]);

const drawn = new WeakMap(); // container -> Map(row key -> the HTML it was drawn from)

/** Draw the whole table into `container` (remembering each row's HTML for `updateRows`). */
export function drawTable(container, page, options) {
  const cols = columns(page, options);
  const body = page.groups ? [] : rows(page, options);
  let bodyHtml;
  if (page.groups) {
    bodyHtml = page.groups
      .map((group, index) => {
        const key = groupKey(group);
        const members = options.members?.get(key);
        const head = groupRowHtml(group, index, cols, options, Boolean(members));
        if (!members) return head;
        const runs = members.map((run) => runRowHtml(run, cols, options, "member")).join("");
        const more =
          group.n > members.length
            ? html`<tr class="member-more"><td colspan="${cols.length + 1}" class="muted">the first ${members.length} of ${group.n} runs</td></tr>`.text
            : "";
        return head + runs + more;
      })
      .join("");
  } else {
    bodyHtml = body.map((row) => row.html).join("");
  }
  const grouped = page.groups ? " grouped" : "";
  container.innerHTML = `<table class="runs${grouped}">${headerHtml(cols, options)}<tbody>${bodyHtml}</tbody></table>`;
  drawn.set(container, new Map(body.map((row) => [row.key, row.html])));
  stick(container);
}

/** Keep the check, number, name and pinned columns in view when the table scrolls sideways. */
function stick(container) {
  const header = $$("thead tr:last-child th", container);
  const sticky = [];
  for (const [i, th] of header.entries()) {
    const col = th.dataset.col;
    if (i === 0 || col === "number" || col === "name" || th.classList.contains("pinned")) sticky.push(i);
    else break; // they are the first columns, in a row
  }
  if (!sticky.length) return;
  const lefts = [];
  let left = 0;
  for (const i of sticky) {
    lefts.push(left);
    left += header[i].getBoundingClientRect().width;
  }
  const last = sticky.length - 1;
  for (const tr of $$("thead tr:last-child, tbody tr", container)) {
    const cells = tr.children;
    if (cells.length !== header.length) continue; // a row spanning the table
    sticky.forEach((i, k) => {
      const cell = cells[i];
      cell.classList.add("sticky");
      cell.classList.toggle("sticky-last", k === last);
      cell.style.left = `${lefts[k]}px`;
    });
  }
}

/**
 * Update the rows drawn in `container` from a new page with the same header: only rows whose
 * HTML changed are replaced, so selection and focus elsewhere survive. Returns false when the
 * rows are not the same ones (the caller draws the whole table instead).
 */
export function updateRows(container, page, options) {
  if (page.groups) return false;
  const fresh = rows(page, options);
  const before = drawn.get(container);
  const shown = $$("tbody > tr", container);
  if (!before || shown.length !== fresh.length || shown.some((tr, i) => tr.dataset.key !== fresh[i].key)) {
    return false;
  }
  let changed = false;
  fresh.forEach((row, i) => {
    if (before.get(row.key) !== row.html) {
      const cursor = shown[i].classList.contains("cursor");
      shown[i].outerHTML = row.html;
      if (cursor) $$("tbody > tr", container)[i].classList.add("cursor");
      changed = true;
    }
  });
  drawn.set(container, new Map(fresh.map((row) => [row.key, row.html])));
  if (changed) stick(container);
  return true;
}

/**
 * Wire a table container: header clicks sort (`onSort(expression)`), checkboxes select
 * (`selected` is a Set of run numbers; `onSelect()` after a change), a click elsewhere on a row
 * opens the run, a group's ▸ shows its runs (`onExpand(index)`). Listeners sit on the
 * container, so redrawing the table keeps them.
 */
export function bindTable(container, { selected, onSelect, onSort, getSort, onExpand }) {
  container.addEventListener("click", (event) => {
    const th = event.target.closest("th[data-sort]");
    if (th && onSort) {
      onSort(nextSort(getSort(), th.dataset.sort, th.dataset.first));
      return;
    }
    const expand = event.target.closest("tr[data-group] button.expand");
    if (expand && onExpand) {
      onExpand(Number(expand.closest("tr").dataset.group));
      return;
    }
    const tr = event.target.closest("tbody tr[data-number]");
    if (!tr || event.target.closest("a, input, button, label, td.check")) return;
    if (window.getSelection()?.toString()) return; // selecting text, not clicking
    const url = runUrl(tr.dataset.number);
    if (event.ctrlKey || event.metaKey) window.open(url, "_blank");
    else window.location.href = url;
  });
  container.addEventListener("change", (event) => {
    const box = event.target;
    const mark = (input, on) => {
      input.checked = on;
      for (const number of input.value.split(",").map(Number)) {
        if (on) selected.add(number);
        else selected.delete(number);
      }
      input.closest("tr").classList.toggle("selected", on);
    };
    if (box.classList.contains("select") || box.classList.contains("select-group")) {
      mark(box, box.checked);
      if (box.classList.contains("select-group")) {
        for (const number of box.value.split(",")) {
          const member = $(`tr[data-number="${number}"] input.select`, container);
          if (member) mark(member, box.checked);
        }
      }
    } else if (box.classList.contains("select-all")) {
      for (const other of $$("input.select, input.select-group", container)) mark(other, box.checked);
    } else {
      return;
    }
    onSelect?.();
  });
}

/** "/compare?runs=3,7,9" for a set of run numbers (in ascending order), with the table's grouping
 * (`groupBy`: ["params.X", ...] or ["*"]) as repeated group_by, so the compare page groups them
 * the same way. */
export function compareUrl(selected, groupBy = []) {
  const runs = [...selected].sort((a, b) => a - b).join(",");
  const grouping = groupBy.map((key) => `&group_by=${encodeURIComponent(key).replace(/%2F/g, "/").replace(/%2A/g, "*")}`);
  return `/compare?runs=${runs}${grouping.join("")}`;
}

// --- RunTable: the table with its controls ----------------------------------------------------

/** Say that something was done, next to the table's controls, for a few seconds. */
export function say(text) {
  const status = $("#table-status");
  status.textContent = text;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => (status.textContent = ""), 6000);
}

/** The controls above a table: columns, metric value, group by, downloads. */
export function toolbarHtml() {
  return html`<div class="table-tools">
    <div class="tool">
      <button type="button" id="columns-button" class="btn" aria-expanded="false" aria-controls="columns-panel">Columns ▾</button>
      <div id="columns-panel" class="tool-panel" hidden></div>
    </div>
    <label class="tool">Metric value <select id="value" aria-label="metric value">${VALUES.map(
      (v) => html`<option value="${v}">${v}</option>`,
    )}</select></label>
    <div class="tool">
      <button type="button" id="groupby-button" class="btn" aria-expanded="false" aria-controls="groupby-panel">Group by: none ▾</button>
      <div id="groupby-panel" class="tool-panel" hidden></div>
    </div>
    <span id="table-status" class="table-status" role="status"></span>
    <span class="spacer"></span>
    <a id="download-csv" class="btn btn-small" href="/api/export/runs?format=csv" download>Download CSV</a>
    <a id="download-parquet" class="btn btn-small" href="/api/export/runs?format=parquet" download>Download Parquet</a>
  </div>
  <div id="bulk-bar" class="bulk-bar" hidden>
    <span id="bulk-count"></span>
    <span class="edit bulk-actions">
      <input id="bulk-tag" type="text" placeholder="tag" aria-label="tag" size="12" spellcheck="false">
      <button type="button" class="btn btn-small" data-bulk="tag">Tag</button>
      <button type="button" class="btn btn-small" data-bulk="untag">Untag</button>
      <input id="bulk-experiment" type="text" placeholder="experiment" aria-label="experiment" list="bulk-experiments" size="22" spellcheck="false">
      <datalist id="bulk-experiments"></datalist>
      <button type="button" class="btn btn-small" data-bulk="move">Move</button>
      <button type="button" class="btn btn-small" data-bulk="remove">Remove from experiment…</button>
      <button type="button" class="btn btn-small btn-danger" data-bulk="delete">Delete…</button>
    </span>
    <button type="button" id="bulk-clear" class="btn btn-link">clear selection</button>
  </div>
  <dialog id="confirm-delete" class="confirm">
    <form method="dialog">
      <p id="confirm-text"></p>
      <div class="confirm-actions">
        <button type="submit" value="cancel" class="btn" id="confirm-cancel">Cancel</button>
        <button type="submit" value="delete" class="btn btn-danger" id="confirm-ok">Delete</button>
      </div>
    </form>
  </dialog>`;
}

export function pagerHtml() {
  return html`<div class="pager">
    <button type="button" id="prev" class="btn">‹ Prev</button>
    <span id="range" class="muted"></span>
    <button type="button" id="next" class="btn">Next ›</button>
  </div>`;
}

/**
 * The table with its controls, on elements `toolbarHtml()` and `pagerHtml()` made.
 *
 * `getState()` is the page's state (with the table's fields, see readTableState), `change(next)`
 * asks the page to load a new state, `scope()` is the query every request carries
 * ({where, experiment, group}), `reload()` loads the current state again (after a bulk action).
 */
export class RunTable {
  constructor(container, { getState, change, scope, reload, onSelect, best = () => null, showExperiment = () => true }) {
    Object.assign(this, { container, getState, change, scope, reload, best, showExperiment });
    this.onSelectPage = onSelect;
    this.selected = new Set();
    this.page = null;
    this.shownHeader = null;
    this.members = new Map(); // group key -> its runs, for the expanded groups
    this.columnsCache = new Map(); // /api/columns query -> answer
    this.cursor = -1;
    this.bind();
  }

  options() {
    const s = this.getState();
    return {
      sort: s.sort,
      group: Boolean(s.group) && !s.groupBy.length,
      selected: this.selected,
      sortable: true,
      selectAll: true,
      showExperiment: this.showExperiment() && !s.group,
      pin: s.pin,
      hide: s.hide,
      value: s.value,
      best: this.best(),
      members: this.members,
      confidence: this.page?.confidence,
    };
  }

  /** Draw a page of the API (runs or groups); with `full` false only changed rows are replaced. */
  draw(page, { full = true, empty = "No runs to show." } = {}) {
    this.page = page;
    const options = this.options();
    const header = headerKey(page, options);
    const items = page.groups || page.runs;
    if (full) this.members.clear();
    if (items.length === 0) {
      this.container.innerHTML = html`<p class="empty">${empty}</p>`.text;
      this.shownHeader = null;
    } else if (full || header !== this.shownHeader || !updateRows(this.container, page, options)) {
      drawTable(this.container, page, options);
      this.shownHeader = header;
      this.moveCursor(0, { keep: true });
    }
    this.drawTools();
    this.drawPager();
    this.showSelection();
  }

  drawPager() {
    const page = this.page;
    const count = page.groups ? page.groups.length : page.runs.length;
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + count;
    const what = page.groups ? ` groups of ${fmtInt(page.run_count)} runs` : "";
    $("#range").textContent = page.total ? `${fmtInt(first)}–${fmtInt(last)} of ${fmtInt(page.total)}${what}` : "";
    $("#prev").disabled = page.offset === 0;
    $("#next").disabled = last >= page.total;
  }

  drawTools() {
    const s = this.getState();
    $("#value").value = s.value;
    const label = !s.groupBy.length
      ? "none"
      : s.groupBy[0] === ALL_BUT_SEEDS
        ? "all params but seed"
        : s.groupBy.map((key) => key.replace(/^params\./, "").replace(/^`(.*)`$/, "$1")).join(", ");
    $("#groupby-button").textContent = `Group by: ${label} ▾`;
    const q = queryString({
      ...this.scope(),
      group: "",
      sort: s.sort,
      params: this.page.params.join(","),
      metrics: this.page.metrics.join(","),
      value: s.value, // one column per metric, the value shown
    });
    $("#download-csv").href = `/api/export/runs?format=csv${q ? `&${q}` : ""}`;
    $("#download-parquet").href = `/api/export/runs?format=parquet${q ? `&${q}` : ""}`;
    if (!$("#columns-panel").hidden) this.drawColumnsPanel();
    if (!$("#groupby-panel").hidden) this.drawGroupPanel();
  }

  /** How many selected runs the table does not show now (selected before a filter, sort or
   * page change): bulk actions apply to them too, so the bar and the confirmations say so. */
  hiddenSelected() {
    const page = this.page;
    if (!page) return 0;
    const shown = new Set(page.groups ? page.groups.flatMap((g) => g.runs) : page.runs.map((run) => run.number));
    let hidden = 0;
    for (const number of this.selected) if (!shown.has(number)) hidden++;
    return hidden;
  }

  /** "3 runs selected (2 not shown)" */
  selectionText() {
    const n = this.selected.size;
    const hidden = this.hiddenSelected();
    return `${fmtInt(n)} run${n === 1 ? "" : "s"} selected${hidden ? ` (${fmtInt(hidden)} not shown)` : ""}`;
  }

  showSelection() {
    const n = this.selected.size;
    $("#bulk-bar").hidden = n === 0;
    $("#bulk-count").textContent = this.selectionText();
    this.onSelectPage?.(this.selected);
  }

  /** The table's Compare address: the selected runs, grouped as the table is. */
  compareUrl() {
    return compareUrl(this.selected, this.getState().groupBy || []);
  }

  /** Ask before a change that cannot be taken back; resolves to whether the user agreed. */
  async confirm(text, ok) {
    const dialog = $("#confirm-delete");
    $("#confirm-text").textContent = text;
    $("#confirm-ok").textContent = ok;
    dialog.returnValue = "";
    dialog.showModal();
    const answer = await new Promise((resolve) =>
      dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }),
    );
    return answer === "delete"; // the OK button's value
  }

  // --- columns and groups panels ----------------------------------------------------------

  async availableColumns() {
    const scope = this.scope();
    const query = queryString({ where: scope.where, experiment: scope.experiment });
    if (!this.columnsCache.has(query)) {
      this.columnsCache.set(query, api("/api/columns", { query: { where: scope.where, experiment: scope.experiment } }));
    }
    try {
      return await this.columnsCache.get(query);
    } catch (error) {
      this.columnsCache.delete(query);
      throw error;
    }
  }

  closePanels() {
    for (const other of ["columns", "groupby"]) {
      $(`#${other}-panel`).hidden = true;
      $(`#${other}-button`).setAttribute("aria-expanded", "false");
    }
  }

  async togglePanel(which) {
    const panel = $(`#${which}-panel`);
    const button = $(`#${which}-button`);
    const open = panel.hidden;
    this.closePanels();
    if (!open) return;
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    panel.innerHTML = '<p class="muted small">Loading keys…</p>';
    try {
      this.available = await this.availableColumns();
    } catch (error) {
      panel.innerHTML = html`<p class="filter-error">${error.message}</p>`.text;
      return;
    }
    if (which === "columns") this.drawColumnsPanel();
    else this.drawGroupPanel();
  }

  drawColumnsPanel() {
    const panel = $("#columns-panel");
    if (!this.available || !this.page) return;
    const s = this.getState();
    const filter = $("#columns-filter")?.value ?? "";
    const section = (kind, title) => {
      const shown = this.page[kind];
      const others = this.available[kind].map((k) => k.key).filter((key) => !shown.includes(key));
      const counts = new Map(this.available[kind].map((k) => [k.key, k.runs]));
      const items = [...shown, ...others].map((key) => {
        const on = shown.includes(key);
        const id = `${kind}.${key}`;
        const pinned = s.pin.includes(id);
        const runs = counts.get(key);
        return html`<li class="chooser-item${on ? " on" : ""}" data-kind="${kind}" data-key="${key}" draggable="${on}">
          <label><input type="checkbox" class="col-on"${on ? " checked" : ""}> <span class="key">${key}</span>${
            runs === undefined ? "" : html` <span class="muted small">${fmtInt(runs)}</span>`
          }</label>
          <span class="chooser-buttons">
            <button type="button" class="col-up btn-icon" title="Move left" aria-label="move ${key} left"${on ? "" : " disabled"}>↑</button>
            <button type="button" class="col-down btn-icon" title="Move right" aria-label="move ${key} right"${on ? "" : " disabled"}>↓</button>
            <button type="button" class="col-pin btn-icon${pinned ? " active" : ""}" aria-pressed="${pinned}" title="${pinned ? "Unpin" : "Pin: show it first, always in view"}" aria-label="pin ${key}">pin</button>
          </span></li>`;
      });
      const automatic = !s[kind].length;
      return html`<div class="chooser-section"><h4>${title} <span class="muted small">${
        automatic ? "chosen for you" : html`<button type="button" class="btn-link col-auto" data-kind="${kind}">choose for me</button>`
      }</span></h4><ul class="chooser-list" data-kind="${kind}">${items}</ul></div>`;
    };
    const fixed = HIDEABLE.map(
      (name) => html`<label class="check-label"><input type="checkbox" class="col-fixed" value="${name}"${
        s.hide.includes(name) ? "" : " checked"
      }> ${name}</label>`,
    );
    panel.innerHTML = html`<div class="chooser-head">
        <input id="columns-filter" type="search" placeholder="filter keys" aria-label="filter keys" value="${filter}" spellcheck="false">
        <button type="button" class="btn btn-small" id="columns-close">Close</button></div>
      <div class="chooser-fixed">${fixed}</div>
      ${section("params", "Params")}${section("metrics", "Metrics")}`.text;
    this.filterColumns();
  }

  filterColumns() {
    const text = ($("#columns-filter")?.value || "").toLowerCase();
    for (const li of $$("#columns-panel .chooser-item")) {
      li.hidden = Boolean(text) && !li.dataset.key.toLowerCase().includes(text);
    }
  }

  drawGroupPanel() {
    const panel = $("#groupby-panel");
    if (!this.available) return;
    const s = this.getState();
    const all = s.groupBy[0] === ALL_BUT_SEEDS;
    const keys = this.available.params.map((k) => k.key);
    panel.innerHTML = html`<label class="check-label group-all"><input type="checkbox" class="group-all-box"${
      all ? " checked" : ""
    }> all params but seed <span class="muted small">(repeats of a configuration)</span></label>
      <ul class="chooser-list">${keys.map((key) => {
        const id = field("params", key);
        const on = !all && s.groupBy.includes(id);
        return html`<li><label><input type="checkbox" class="group-key" value="${id}"${on ? " checked" : ""}${
          all ? " disabled" : ""
        }> <span class="key">${key}</span></label></li>`;
      })}</ul>
      <div class="chooser-head"><button type="button" class="btn btn-small" id="group-none"${
        s.groupBy.length ? "" : " disabled"
      }>No grouping</button><button type="button" class="btn btn-small" id="groupby-close">Close</button></div>`.text;
  }

  /** The shown columns of `kind` after `edit(list)`: the automatic choice becomes explicit. */
  editColumns(kind, edit) {
    const s = this.getState();
    const list = [...this.page[kind]];
    edit(list);
    this.change({ ...s, [kind]: list });
  }

  onColumnsPanel(event) {
    const target = event.target;
    const li = target.closest(".chooser-item");
    const s = this.getState();
    if (target.id === "columns-close") return this.togglePanel("columns");
    if (target.classList.contains("col-auto")) {
      const kind = target.dataset.kind;
      return this.change({ ...s, [kind]: [], pin: s.pin.filter((id) => !id.startsWith(`${kind}.`)) });
    }
    if (target.classList.contains("col-fixed")) {
      const hide = HIDEABLE.filter((name) => (name === target.value ? !target.checked : s.hide.includes(name)));
      return this.change({ ...s, hide });
    }
    if (!li) return;
    const { kind, key } = li.dataset;
    if (target.classList.contains("col-on")) {
      const id = `${kind}.${key}`;
      const list = this.page[kind].filter((k) => k !== key);
      if (target.checked) list.push(key);
      const pin = target.checked ? s.pin : s.pin.filter((p) => p !== id);
      return this.change({ ...s, pin, [kind]: list });
    }
    const step = target.closest(".col-up") ? -1 : target.closest(".col-down") ? 1 : 0;
    if (step) {
      return this.editColumns(kind, (list) => {
        const at = list.indexOf(key);
        const to = at + step;
        if (at < 0 || to < 0 || to >= list.length) return;
        [list[at], list[to]] = [list[to], list[at]];
      });
    }
    if (target.closest(".col-pin")) {
      const id = `${kind}.${key}`;
      const pin = s.pin.includes(id) ? s.pin.filter((p) => p !== id) : [...s.pin, id];
      const shown = this.page[kind].includes(key);
      return this.change({ ...s, pin, [kind]: shown ? s[kind] : [...this.page[kind], key] });
    }
  }

  bindDrag() {
    const panel = $("#columns-panel");
    let dragged = null;
    panel.addEventListener("dragstart", (event) => {
      dragged = event.target.closest(".chooser-item.on");
      if (dragged) event.dataTransfer.setData("text/plain", dragged.dataset.key);
    });
    panel.addEventListener("dragover", (event) => {
      const over = event.target.closest(".chooser-item.on");
      if (dragged && over && over.dataset.kind === dragged.dataset.kind) event.preventDefault();
    });
    panel.addEventListener("drop", (event) => {
      const over = event.target.closest(".chooser-item.on");
      if (!dragged || !over || over.dataset.kind !== dragged.dataset.kind) return;
      event.preventDefault();
      const { kind, key } = dragged.dataset;
      dragged = null;
      this.editColumns(kind, (list) => {
        list.splice(list.indexOf(key), 1);
        list.splice(list.indexOf(over.dataset.key), 0, key);
      });
    });
  }

  onGroupPanel(event) {
    const target = event.target;
    const s = this.getState();
    if (target.id === "groupby-close") return this.togglePanel("groupby");
    if (target.id === "group-none") return this.change({ ...s, groupBy: [], page: 1 });
    if (target.classList.contains("group-all-box")) {
      return this.change({ ...s, groupBy: target.checked ? [ALL_BUT_SEEDS] : [], page: 1 });
    }
    if (target.classList.contains("group-key")) {
      const keys = $$("#groupby-panel input.group-key:checked").map((box) => box.value);
      return this.change({ ...s, groupBy: keys, page: 1 });
    }
  }

  // --- groups' runs -----------------------------------------------------------------------

  async expand(index) {
    const group = this.page.groups?.[index];
    if (!group) return;
    const key = groupKey(group);
    if (this.members.has(key)) {
      this.members.delete(key);
    } else {
      const s = this.getState();
      const answer = await api("/api/runs", {
        query: {
          where: `number in (${group.runs.slice(0, MEMBERS_LIMIT).join(", ")})`,
          sort: s.sort,
          limit: MEMBERS_LIMIT,
          params: this.page.params.join(","),
          metrics: this.page.metrics.join(","),
          value: s.value === "last" ? "" : s.value,
        },
      });
      this.members.set(key, answer.runs);
    }
    drawTable(this.container, this.page, this.options());
    this.moveCursor(0, { keep: true });
  }

  // --- bulk actions -----------------------------------------------------------------------

  async bulk(action) {
    const runs = [...this.selected].sort((a, b) => a - b);
    if (!runs.length) return;
    const body = { runs, action };
    if (action === "tag" || action === "untag") {
      const tag = $("#bulk-tag").value.trim();
      if (!tag) {
        notify("Type a tag first.");
        $("#bulk-tag").focus();
        return;
      }
      body.tags = [tag];
    } else if (action === "move") {
      const experiment = $("#bulk-experiment").value.trim();
      if (!experiment) {
        notify("Type an experiment name");
        $("#bulk-experiment").focus();
        return;
      }
      body.experiment = experiment;
    } else if (action === "remove" || action === "delete") {
      const hidden = this.hiddenSelected();
      const count = `${fmtInt(runs.length)} run${runs.length === 1 ? "" : "s"}${hidden ? ` (${fmtInt(hidden)} not shown)` : ""}`;
      const list = runs
        .map((n) => `#${n}`)
        .join(", ")
        .slice(0, 200);
      const text =
        action === "delete"
          ? `Delete ${count} (${list})? Their metrics, notes and artifacts go too; this cannot be undone.`
          : `Remove ${count} (${list}) from their experiments? The runs stay, in no experiment.`;
      if (!(await this.confirm(text, action === "delete" ? "Delete" : "Remove"))) return;
      if (action === "remove") Object.assign(body, { action: "move", experiment: null });
    }
    let result;
    try {
      result = await api("/api/runs/bulk", { method: "POST", body });
    } catch (error) {
      notify(`Could not ${action} the runs: ${error.message}`);
      return;
    }
    const done = { tag: "Tagged", untag: "Untagged", move: "Moved", remove: "Removed", delete: "Deleted" }[action];
    say(`${done} ${result.changed} run${result.changed === 1 ? "" : "s"}.`);
    if (action === "delete") this.selected.clear();
    this.members.clear();
    await this.reload();
  }

  async fillExperiments() {
    if (this.experimentsFilled) return;
    this.experimentsFilled = true;
    try {
      const experiments = await api("/api/experiments");
      $("#bulk-experiments").innerHTML = experiments
        .map((e) => html`<option value="${e.name}"></option>`.text)
        .join("");
    } catch {
      this.experimentsFilled = false;
    }
  }

  // --- keyboard ---------------------------------------------------------------------------

  cursorRows() {
    return $$("tbody tr[data-number], tbody tr[data-group]", this.container);
  }

  /** Move the row cursor by `step` rows (with `keep`, stay on the same index after a redraw). */
  moveCursor(step, { keep = false } = {}) {
    const rowsShown = this.cursorRows();
    for (const tr of $$("tbody tr.cursor", this.container)) tr.classList.remove("cursor");
    if (!rowsShown.length || (keep && this.cursor < 0)) return;
    this.cursor = Math.max(0, Math.min(rowsShown.length - 1, this.cursor + step));
    const row = rowsShown[this.cursor];
    row.classList.add("cursor");
    if (!keep) row.scrollIntoView({ block: "nearest" });
  }

  onKey(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest?.("input, textarea, select, [contenteditable], dialog")) return;
    const key = event.key;
    if (key === "j" || key === "k") {
      event.preventDefault();
      this.moveCursor(key === "j" ? 1 : this.cursor < 0 ? 1 : -1);
      return;
    }
    const row = this.cursorRows()[this.cursor];
    if (!row) return;
    if (key === "x") {
      event.preventDefault();
      const box = $("input.select, input.select-group", row);
      box.checked = !box.checked;
      box.dispatchEvent(new Event("change", { bubbles: true }));
    } else if (key === "Enter" && !event.target.closest("button, a")) {
      event.preventDefault();
      if (row.dataset.group !== undefined) this.expand(Number(row.dataset.group));
      else window.location.href = runUrl(row.dataset.number);
    }
  }

  bind() {
    bindTable(this.container, {
      selected: this.selected,
      onSelect: () => this.showSelection(),
      onSort: (sort) => this.change({ ...this.getState(), sort, page: 1 }),
      getSort: () => this.getState().sort,
      onExpand: (index) => this.expand(index).catch((error) => notify(error.message)),
    });
    $("#value").addEventListener("change", () => this.change({ ...this.getState(), value: $("#value").value }));
    for (const which of ["columns", "groupby"]) {
      const warm = () => this.availableColumns().catch(() => {}); // a head start on the keys
      $(`#${which}-button`).addEventListener("pointerenter", warm);
      $(`#${which}-button`).addEventListener("focus", warm);
    }
    $("#columns-button").addEventListener("click", () => this.togglePanel("columns"));
    $("#groupby-button").addEventListener("click", () => this.togglePanel("groupby"));
    $("#columns-panel").addEventListener("change", (event) => {
      if (event.target.id !== "columns-filter") this.onColumnsPanel(event);
    });
    $("#columns-panel").addEventListener("click", (event) => {
      if (event.target.closest("button")) this.onColumnsPanel(event);
    });
    $("#columns-panel").addEventListener("input", (event) => {
      if (event.target.id === "columns-filter") this.filterColumns();
    });
    this.bindDrag();
    $("#groupby-panel").addEventListener("change", (event) => this.onGroupPanel(event));
    $("#groupby-panel").addEventListener("click", (event) => {
      if (event.target.closest("button")) this.onGroupPanel(event);
    });
    $("#prev").addEventListener("click", () => {
      const s = this.getState();
      this.change({ ...s, page: Math.max(1, s.page - 1) });
    });
    $("#next").addEventListener("click", () => {
      const s = this.getState();
      this.change({ ...s, page: s.page + 1 });
    });
    for (const button of $$("#bulk-bar [data-bulk]")) {
      button.addEventListener("click", () => this.bulk(button.dataset.bulk));
    }
    $("#bulk-experiment").addEventListener("focus", () => this.fillExperiments());
    $("#bulk-clear").addEventListener("click", () => {
      this.selected.clear();
      for (const box of $$("input.select, input.select-group, input.select-all", this.container)) {
        box.checked = false;
        box.closest("tr")?.classList.remove("selected");
      }
      this.showSelection();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.closePanels();
      else this.onKey(event);
    });
    document.addEventListener("click", (event) => {
      if (event.target.isConnected && !event.target.closest(".tool")) this.closePanels();
    });
    window.addEventListener("resize", () => stick(this.container));
  }
}
