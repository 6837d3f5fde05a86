// The runs table, shared by the runs page and an experiment's page: one row per run with its
// status, times, the varying params and the chosen metrics (the `params`/`metrics` columns of
// a GET /api/runs answer), a checkbox to select it, and group rows per experiment.

import {
  $$,
  badge,
  experimentUrl,
  field,
  fmtDuration,
  fmtNumber,
  fmtParam,
  html,
  runUrl,
  timeHtml,
  toNumber,
} from "./common.js";

/** The fixed columns: [label, sort field, first-click direction, css class]. */
const FIXED = [
  ["#", "number", "desc", "num"],
  ["Name", "name", "asc", ""],
  ["Status", "status", "asc", ""],
  ["Experiment", "experiment", "asc", ""],
  ["Started", "started", "desc", ""],
  ["Duration", "duration", "desc", "num"],
];

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

/** The columns of a page of runs: fixed ones, then params, then metrics. */
function columns(page, { showExperiment }) {
  const fixed = FIXED.filter(([, name]) => showExperiment || name !== "experiment").map(
    ([label, sort, first, cls]) => ({ label, sort, first, cls, kind: "fixed" }),
  );
  const params = page.params.map((key) => ({
    label: key,
    key,
    sort: field("params", key),
    first: "asc",
    cls: "param",
    kind: "param",
    list: (page.lists || []).find((list) => list.key === key), // a list of words, element-wise
  }));
  const metrics = page.metrics.map((key) => ({
    label: key,
    key,
    sort: field("metrics", key),
    first: "desc",
    cls: "num metric",
    kind: "metric",
  }));
  return [...fixed, ...params, ...metrics];
}

function headerHtml(cols, { sort, sortable, selectAll }) {
  const active = activeSort(sort);
  const params = cols.filter((c) => c.kind === "param").length;
  const metrics = cols.filter((c) => c.kind === "metric").length;
  const fixed = cols.length - params - metrics;
  const groups =
    params || metrics
      ? html`<tr class="col-groups"><th colspan="${fixed + 1}"></th>${params
          ? html`<th colspan="${params}" class="group-params">params</th>`
          : ""}${metrics ? html`<th colspan="${metrics}" class="group-metrics">metrics</th>` : ""}</tr>`
      : "";
  const cells = cols.map((c) => {
    const arrow = sortable && c.sort === active.field ? (active.desc ? " ▼" : " ▲") : "";
    const classes = [c.cls, sortable ? "sortable" : "", arrow ? "sorted" : ""].join(" ").trim();
    const attrs = sortable
      ? html` data-sort="${c.sort}" data-first="${c.first}" title="Sort by ${c.sort}"`
      : "";
    const common = c.list?.common.length
      ? html`<div class="list-common" title="every run shown has these">all: ${c.list.common.join(", ")}</div>`
      : "";
    return html`<th class="${classes}"${attrs}>${c.label}<span class="arrow">${arrow}</span>${common}</th>`;
  });
  const check = selectAll
    ? html`<th class="check"><input type="checkbox" class="select-all" title="Select all on this page"></th>`
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
    const checked = options.selected?.has(run.number);
    const classes = [
      `status-${run.status}`,
      options.best === run.number ? "best" : "",
      checked ? "selected" : "",
    ];
    const box = html`<input type="checkbox" class="select" value="${run.number}"
      aria-label="select run ${run.number}"${checked ? " checked" : ""}>`;
    out.push({
      key: `r:${run.number}`,
      html: html`<tr class="${classes.join(" ").trim()}" data-key="r:${run.number}"
        data-number="${run.number}"><td class="check">${box}</td>${cols.map((col) =>
        cellHtml(run, col, options.best),
      )}</tr>`.text,
    });
  }
  return out;
}

/** The signature of a page's header: when it changes, the whole table is drawn again. */
export const headerKey = (page, options) =>
  JSON.stringify([page.params, page.metrics, options.sort, options.showExperiment, options.group]);

/** Draw the whole table into `container` (remembering each row's HTML for `updateRows`). */
export function drawTable(container, page, options) {
  const cols = columns(page, options);
  const body = rows(page, options);
  container.innerHTML = `<table class="runs">${headerHtml(cols, options)}<tbody>${body
    .map((row) => row.html)
    .join("")}</tbody></table>`;
  drawn.set(container, new Map(body.map((row) => [row.key, row.html])));
}

const drawn = new WeakMap(); // container -> Map(row key -> the HTML it was drawn from)

/**
 * Update the rows drawn in `container` from a new page with the same header: only rows whose
 * HTML changed are replaced, so selection and focus elsewhere survive. Returns false when the
 * rows are not the same ones (the caller draws the whole table instead).
 */
export function updateRows(container, page, options) {
  const fresh = rows(page, options);
  const before = drawn.get(container);
  const shown = $$("tbody > tr", container);
  if (!before || shown.length !== fresh.length || shown.some((tr, i) => tr.dataset.key !== fresh[i].key)) {
    return false;
  }
  fresh.forEach((row, i) => {
    if (before.get(row.key) !== row.html) shown[i].outerHTML = row.html;
  });
  drawn.set(container, new Map(fresh.map((row) => [row.key, row.html])));
  return true;
}

/**
 * Wire a table container: header clicks sort (`onSort(expression)`), checkboxes select
 * (`selected` is a Set of run numbers; `onSelect()` after a change), a click elsewhere on a row
 * opens the run. Listeners sit on the container, so redrawing the table keeps them.
 */
export function bindTable(container, { selected, onSelect, onSort, getSort }) {
  container.addEventListener("click", (event) => {
    const th = event.target.closest("th[data-sort]");
    if (th && onSort) {
      onSort(nextSort(getSort(), th.dataset.sort, th.dataset.first));
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
    if (box.classList.contains("select")) {
      const number = Number(box.value);
      if (box.checked) selected.add(number);
      else selected.delete(number);
      box.closest("tr").classList.toggle("selected", box.checked);
    } else if (box.classList.contains("select-all")) {
      for (const other of $$("input.select", container)) {
        other.checked = box.checked;
        const number = Number(other.value);
        if (box.checked) selected.add(number);
        else selected.delete(number);
        other.closest("tr").classList.toggle("selected", box.checked);
      }
    } else {
      return;
    }
    onSelect?.();
  });
}

/** "/compare?runs=3,7,9" for a set of run numbers (in ascending order). */
export const compareUrl = (selected) => `/compare?runs=${[...selected].sort((a, b) => a - b).join(",")}`;
