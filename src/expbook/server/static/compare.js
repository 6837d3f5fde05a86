// The compare page (/compare?runs=1,2,3): the runs' curves overlaid (one chart per metric key,
// one trace per run), their params side by side, a parallel-coordinates chart of the params
// that vary against a metric, and a scatter of any param against any metric.
//
// Groups (?group_by=params.X, repeated for several params, or *, every param but the seeds): the
// charts draw each group's mean with a CI (at the API's confidence level) or min-max band
// (?band=ci|minmax) from GET /api/compare/series, and a table compares each group with a
// baseline group by Welch's t-test from GET /api/compare (the numbers of `expbook compare`).
// ?color=params.X colours the runs by a param's value; the metrics table shows
// last/min/max/best with deltas against a baseline run (?baseline=N).
// Everything a user would share lives in the address; statistics come from the API.

import {
  $,
  api,
  badge,
  fmtNumber,
  field,
  fmtParam,
  html,
  notify,
  runApi,
  runUrl,
  showFatal,
  startPage,
  toNumber,
} from "./common.js";
import {
  colorAt,
  fetchSeries,
  levelText,
  LineChart,
  lineLayout,
  loadPlotly,
  mountChartToolbar,
  PLOT_CONFIG,
  plotText,
  splitKey,
  themeColors,
} from "./charts.js";
import { elementsHtml, VALUES } from "./runtable.js";
import {
  bandsFor,
  bestIndex,
  delta,
  deltaText,
  groupName,
  groupTraces,
  improves,
  intervalText,
  logSpaced,
  meanText,
  paramColors,
  pText,
  summaryValue,
} from "./groupcharts.js";

const plotlyLoaded = loadPlotly(); // parsed while the runs' data is fetched

const POINTS = 1000; // per series: enough for a chart, small enough for 20 runs × many keys
const MISSING = "—";

let runs = []; // run details, in the order asked for
let lists = {}; // key -> the list param element-wise (/api/list-params), for lists of words
const charts = [];
const chartOptions = { xMode: "step", logY: false };
let runSeries = null; // GET /api/series of every run and key, fetched once
const groupSeries = new Map(); // groupingKey(group_by) -> GET /api/compare/series
// Each request's number: an answer to an older request (the user changed the grouping while it
// was under way) is dropped, not drawn over the newer one.
const sequence = { compared: 0, curves: 0, change: 0 };
let compared = null; // GET /api/compare for the current group_by and value
let coloring = null; // paramColors() of the colour-by param, or null: by run

/** What the address says (and the controls change): grouping, band, colours, baselines. */
const state = {
  groupBy: [], // [] (each run), ["*"] or ["params.KEY", ...]
  band: "ci",
  color: "", // "" (by run) or "params.KEY"
  value: "last",
  baseline: null, // run number: the metrics table's deltas
  baseGroup: 0, // index of the baseline group
  groupMetric: "",
  allValues: false, // the metrics table: all four values of each metric
};

function readState() {
  const query = new URLSearchParams(window.location.search);
  state.groupBy = [...new Set(query.getAll("group_by").map((v) => v.trim()).filter(Boolean))];
  state.band = query.get("band") === "minmax" ? "minmax" : "ci";
  state.color = query.get("color") || "";
  state.value = ["last", "min", "max", "best"].includes(query.get("value")) ? query.get("value") : "last";
  state.baseline = Number(query.get("baseline")) || null;
  state.baseGroup = Math.max(0, Number(query.get("base_group")) || 0);
  state.groupMetric = query.get("metric") || "";
  state.allValues = query.get("values") === "all";
}

/** Keep the address in step with the controls (replaceState: no reload, no history entry). */
function writeState() {
  const query = new URLSearchParams(window.location.search);
  const set = (name, value, fallback) => (value && value !== fallback ? query.set(name, value) : query.delete(name));
  query.delete("group_by");
  for (const key of state.groupBy) query.append("group_by", key);
  set("band", state.band, "ci");
  set("color", state.color, "");
  set("value", state.value, "last");
  set("baseline", state.baseline ? String(state.baseline) : "", String(runs[0]?.number ?? ""));
  set("base_group", String(state.baseGroup), "0");
  set("metric", state.groupMetric, "");
  set("values", state.allValues ? "all" : "", "");
  const text = query.toString().replace(/%2C/g, ",").replace(/%2F/g, "/").replace(/%2A/g, "*");
  history.replaceState(null, "", `/compare?${text}`);
}

/** The grouping as one text (a Map key, a select's value). */
const groupingKey = (groupBy) => JSON.stringify(groupBy);
/** The grouping as a person reads it: "model.hidden, lr" or "all params but the seed". */
const groupingText = (groupBy) =>
  groupBy[0] === "*" ? "all params but the seed" : groupBy.map((k) => k.replace(/^params\./, "").replace(/^`(.*)`$/, "$1")).join(", ");

// --- the runs asked for -----------------------------------------------------------------------

function requestedRefs() {
  const text = new URLSearchParams(window.location.search).get("runs") || "";
  return [...new Set(text.split(",").map((part) => part.trim()).filter(Boolean))];
}

/** A run's colour: by its place in the comparison, or by its value of the colour-by param. */
function colorOf(number) {
  const index = runs.findIndex((run) => run.number === number);
  if (!coloring || index < 0) return colorAt(index);
  return coloring.color(runs[index].params[state.color.slice("params.".length)]);
}

const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function setColoring() {
  const key = state.color.startsWith("params.") ? state.color.slice("params.".length) : "";
  coloring = key ? paramColors(runs.map((run) => run.params[key]), { missing: cssVar("--muted") || "#9ca3af" }) : null;
}
const startOf = (number) => runs.find((run) => run.number === number)?.started_at ?? 0;

/** Compare other runs, keeping the page's other settings. */
function setRefs(refs) {
  const query = new URLSearchParams(window.location.search);
  query.delete("runs");
  query.delete("baseline");
  query.delete("base_group");
  const rest = query.toString();
  const url = refs.length ? `/compare?runs=${refs.join(",")}${rest ? `&${rest}` : ""}` : "/compare";
  window.location.href = url;
}

function layout(failed) {
  $("#main").innerHTML = html`
    <div class="page-head"><h1>Compare ${runs.length} runs</h1></div>
    ${failed.map((f) => html`<div class="alert">${f.what ?? `Run ${f.ref}`}: ${f.error.message}</div>`)}
    <div class="run-chips" id="run-chips"></div>
    <div class="compare-controls" id="compare-controls">
      <label>group by <select id="group-by"></select></label>
      <label id="band-label">band <select id="band">${Object.entries(bandsFor(compared?.confidence)).map(
        ([value, text]) => html`<option value="${value}">${text}</option>`,
      )}</select></label>
      <label>colour by <select id="color-by"></select></label>
      <label>value <select id="value"><option value="last">last</option><option value="min">min</option>
        <option value="max">max</option><option value="best">best</option></select></label>
      <span id="color-legend" class="color-legend"></span>
    </div>
    <section class="section">
      <div class="chart-controls">
        <h2 style="margin:0">Metrics</h2>
        <div id="chart-toolbar"></div>
        <label class="check-label"><input type="checkbox" id="log-y"> log y</label>
        <span class="muted small">drag to zoom · double-click to reset</span>
        <span id="group-note" class="muted small"></span>
      </div>
      <div id="group-legend" class="group-legend" hidden></div>
      <div id="charts" class="charts"><p class="muted">Loading series…</p></div>
    </section>
    <section class="card section" id="groups-card" hidden>
      <h2>Groups <span id="groups-count" class="count small"></span> <span class="card-tools">
        <label>metric <select id="group-metric"></select></label>
        <label>baseline <select id="base-group"></select></label></span></h2>
      <div id="groups-table" class="table-scroll"></div>
      <p class="muted small">Each group's mean ± sample std and the <span id="groups-level">${levelText(compared?.confidence)}</span> confidence interval of the mean
        (Student's t); each group against the baseline by Welch's t-test, as <code>expbook compare</code>
        prints it. A group of one run has no noise estimate.</p>
    </section>
    <div class="cards cards-2">
      <section class="card" id="parcoords-card">
        <h2>Params → metric <span class="card-tools"><label>metric <select id="pc-metric"></select></label></span></h2>
        <div id="parcoords" class="chart chart-wide"></div>
      </section>
      <section class="card" id="scatter-card">
        <h2>Scatter <span class="card-tools">
          <label>x <select id="sc-x"></select></label><label>y <select id="sc-y"></select></label></span></h2>
        <div id="scatter" class="chart chart-wide"></div>
      </section>
    </div>
    <section class="card section compare-table-card" id="metrics-card">
      <h2>Metrics <span id="metrics-value" class="count small"></span> <span class="card-tools">
        <label class="check-label"><input type="checkbox" id="all-values"> last, min, max and best</label>
        <label>deltas against <select id="baseline-run"></select></label></span></h2>
      <div id="metrics-table" class="table-scroll"></div>
    </section>
    <section class="card section compare-table-card" id="params-card">
      <h2>Params <span class="card-tools"><label class="check-label"><input type="checkbox" id="only-differing"> only differing</label></span></h2>
      <div id="params-table" class="table-scroll"></div>
    </section>`;
  drawChips();
}

function drawChips() {
  $("#run-chips").innerHTML = html`${runs.map(
    (run) => html`<span class="run-chip" data-number="${run.number}"><span class="swatch" style="background:${chipColor(run.number)}"></span>
      <a href="${runUrl(run.number)}">#${run.number} ${run.name}</a>${badge(run.status)}
      <button type="button" class="remove-run" data-number="${run.number}" title="Leave out of the comparison">×</button></span>`,
  )}`.text;
  const legend = $("#color-legend");
  if (!coloring) {
    legend.innerHTML = "";
    return;
  }
  const many = coloring.legend.length > 12; // a scale of many values: its two ends
  const items = many ? [coloring.legend[0], null, coloring.legend[coloring.legend.length - 1]] : coloring.legend;
  legend.innerHTML = html`<span class="muted">${state.color.slice("params.".length)}${coloring.log ? " (log scale)" : ""}:</span>
    ${items.map((item) =>
      item ? html`<span class="legend-item"><span class="swatch" style="background:${item.color}"></span>${item.text}</span>` : html`<span class="muted">…</span>`,
    )}`.text;
}

// --- keys and values --------------------------------------------------------------------------

/** Keys ordered by metric, then split: train/loss next to valid/loss. */
const byMetric = (a, b) => splitKey(a)[1].localeCompare(splitKey(b)[1]) || a.localeCompare(b);

const union = (lists) => [...new Set(lists.flat())];

const paramKeys = () => union(runs.map((run) => Object.keys(run.params))).sort();
const metricKeys = () => union(runs.map((run) => Object.keys(run.metrics))).sort(byMetric);

/** A param's value as comparable text; a run without it has its own. */
const canonical = (run, key) => (key in run.params ? JSON.stringify(run.params[key]) : "\0missing");

const differs = (key) => new Set(runs.map((run) => canonical(run, key))).size > 1;

/** The metric a comparison is usually about: a validation one, else a test one, else the first. */
function defaultMetric(keys) {
  for (const splits of [["valid", "validation", "val", "eval", "dev"], ["test"]]) {
    const found = keys.find((key) => splits.includes((splitKey(key)[0] || "").toLowerCase()));
    if (found) return found;
  }
  return keys[0];
}

const metricValue = (run, key) => toNumber(run.metrics[key]?.value);

/** A param's value for the charts: for a list param, only its elements that vary. */
function chartValue(run, key) {
  if (!lists[key] || !(key in run.params)) return run.params[key];
  return (lists[key].runs[String(run.number)] || []).map((e) => `+${e}`).join(" ") || MISSING;
}

// --- curves -----------------------------------------------------------------------------------

async function drawCurves() {
  const keys = union(runs.map((run) => run.series_keys)).sort(byMetric);
  const container = $("#charts");
  if (!keys.length) {
    container.innerHTML = html`<p class="muted">These runs logged no metric series.</p>`.text;
    return;
  }
  if (state.groupBy.length) {
    await drawGroupCurves(keys);
    return;
  }
  const seq = ++sequence.curves; // a group chart still under way draws nothing now
  const refs = runs.map((run) => String(run.number));
  if (!runSeries) [runSeries] = await Promise.all([fetchSeries(refs, keys, { points: POINTS }), plotlyLoaded]);
  if (seq !== sequence.curves) return; // grouped again meanwhile
  $("#group-note").textContent = "";
  $("#group-legend").hidden = true;
  const series = runSeries;
  container.innerHTML = "";
  charts.length = 0;
  // Up to 10 runs each chart has a legend; beyond, the run chips above are the legend (20
  // legends of 20 entries would crowd the charts and double their drawing time).
  const legend = runs.length <= 10;
  const height = 280 + (legend ? 18 * Math.ceil(runs.length / 4) : 0);
  for (const key of keys) {
    const card = document.createElement("div");
    card.className = "chart-card";
    card.dataset.key = key;
    card.innerHTML = html`<h3>${key}</h3><div class="chart" style="height:${height}px"></div>`.text;
    container.append(card);
    const chart = new LineChart($(".chart", card), {
      runs: refs,
      keys: [key],
      name: (s) => `#${s.run} ${s.name}`,
      color: (s) => colorOf(s.run),
      startOf,
      points: () => POINTS,
      legend,
    });
    chart.options = { ...chartOptions };
    // traces in the order of the runs, so colours and legends line up across charts
    const order = (s) => refs.indexOf(String(s.run));
    chart.setSeries(series.filter((s) => s.key === key).sort((a, b) => order(a) - order(b)));
    charts.push(chart);
  }
}

/** A run chip's colour: its group's when grouped (the charts draw groups), else its own. */
function chipColor(number) {
  const index = state.groupBy.length && compared ? compared.groups.findIndex((g) => g.runs.includes(number)) : -1;
  return index >= 0 ? groupColor(index) : colorOf(number);
}

/** A group's colour: the colour-by param's when all its runs share it, else its place. */
function groupColor(index) {
  const group = compared?.groups[index];
  if (coloring && group) {
    const colours = new Set(group.runs.map(colorOf));
    if (colours.size === 1) return [...colours][0];
  }
  return colorAt(index);
}

/** Each group's mean curve with its band, one chart per key (x is the step: runs are aligned
 * by step on the server). */
async function drawGroupCurves(keys) {
  // what this drawing is for, read once: the controls may change while the series load
  const seq = ++sequence.curves;
  const groupBy = [...state.groupBy];
  const band = state.band;
  const key = groupingKey(groupBy);
  const container = $("#charts");
  const query = { runs: runs.map((run) => run.number).join(","), group_by: groupBy, points: POINTS };
  let found = groupSeries.get(key);
  if (!found) {
    const perRequest = Math.max(1, Math.floor(400 / runs.length)); // the API's runs x keys limit
    const requests = [];
    for (let k = 0; k < keys.length; k += perRequest) {
      requests.push(api("/api/compare/series", { query: { ...query, key: keys.slice(k, k + perRequest) } }));
    }
    const answers = await Promise.all([...requests, plotlyLoaded]);
    answers.pop();
    found = { groups: answers[0].groups, confidence: answers[0].confidence, series: answers.flatMap((a) => a.series) };
    groupSeries.set(key, found);
  }
  await plotlyLoaded;
  if (seq !== sequence.curves) return; // a newer drawing took over
  $("#group-note").textContent = `groups by ${groupingText(groupBy)}: mean with ${bandsFor(found.confidence)[band]} band · x is the step`;
  container.innerHTML = "";
  charts.length = 0;
  // one legend for every chart: the groups, their n, and which have no noise estimate
  const legend = $("#group-legend");
  legend.hidden = false;
  legend.innerHTML = html`${found.groups.map(
    (group, i) => html`<span class="legend-item${group.n < 2 ? " noise-unknown-entry" : ""}" data-group="${i}">
      <span class="line-swatch" style="border-color:${groupColor(i)}"></span>${groupName(group)}</span>`,
  )}`.text;
  const height = 280;
  for (const key of keys) {
    const card = document.createElement("div");
    card.className = "chart-card group-chart";
    card.dataset.key = key;
    card.innerHTML = html`<h3>${key}</h3><div class="chart" style="height:${height}px"></div>`.text;
    container.append(card);
    const traces = groupTraces(
      found.series.filter((s) => s.key === key),
      found.groups,
      { band, color: groupColor, confidence: found.confidence },
    );
    const layout = lineLayout({ xMode: "step", logY: chartOptions.logY, unit: { label: "seconds", scale: 1 }, legend: false });
    layout.hovermode = "closest";
    Plotly.react($(".chart", card), traces, layout, PLOT_CONFIG);
  }
}

function bindChartControls() {
  const update = () => {
    chartOptions.xMode = $("#x-mode").value;
    chartOptions.logY = $("#log-y").checked;
    for (const chart of charts) chart.setOptions(chartOptions);
    if (state.groupBy.length) drawCurves().catch((error) => notify(error.message));
  };
  mountChartToolbar($("#chart-toolbar"), { keys: union(runs.map((run) => run.series_keys)).sort(byMetric) });
  $("#x-mode").addEventListener("change", update);
  $("#log-y").addEventListener("change", update);
}

// --- params and metrics tables ----------------------------------------------------------------

function runHeader() {
  return runs.map(
    (run) => html`<th><span class="swatch" style="background:${colorOf(run.number)}"></span>
      <a href="${runUrl(run.number)}">#${run.number}</a> <span class="muted">${run.name}</span></th>`,
  );
}

/** A list param's rows: the elements that vary, per run, with the common ones said once; for
 * two runs also what the second removed and added, as `expbook diff` shows it. */
function listRows(key, list) {
  const cells = runs.map((run) =>
    key in run.params
      ? html`<td class="mono">${elementsHtml(list.runs[String(run.number)] || [])}</td>`
      : html`<td class="muted">${MISSING}</td>`,
  );
  const common = list.common.length
    ? html`<div class="list-common">all: ${list.common.join(", ")}</div>`
    : "";
  const rows = [html`<tr class="differs list-param" data-key="${key}"><th>${key}${common}</th>${cells}</tr>`];
  if (list.removed && list.added) {
    const change = [
      ...list.removed.map((e) => html`<span class="element removed">−${e}</span>`),
      ...list.added.map((e) => html`<span class="element added">+${e}</span>`),
    ];
    rows.push(html`<tr class="differs list-change" data-key="${key}"><th>${key}: #${runs[0].number} → #${runs[1].number}</th>
      <td class="mono" colspan="${runs.length}"><span class="elements">${change}</span></td></tr>`);
  }
  return rows;
}

function drawParamsTable() {
  const only = $("#only-differing").checked;
  const keys = paramKeys().filter((key) => !only || differs(key));
  const rows = keys.map((key) => {
    if (lists[key]) return listRows(key, lists[key]);
    const cells = runs.map((run) =>
      key in run.params
        ? html`<td class="mono">${fmtParam(run.params[key])}</td>`
        : html`<td class="muted">${MISSING}</td>`,
    );
    return html`<tr class="${differs(key) ? "differs" : ""}"><th>${key}</th>${cells}</tr>`;
  });
  $("#params-table").innerHTML = keys.length
    ? html`<table class="grid compare-grid"><thead><tr><th>param</th>${runHeader()}</tr></thead><tbody>${rows}</tbody></table>`.text
    : html`<p class="muted">${only ? "No param differs between these runs." : "No params."}</p>`.text;
}

/** Whether lower is better for a metric, as the server judges it (GET /api/compare). */
const lowerIsBetter = (key) => compared?.lower_is_better?.[key] ?? false;

/** Metrics × runs: each run's last, min, max or best value (?value=; all four with
 * ?values=all), the best run of each row marked, and every other run's delta against the
 * baseline run (absolute and %). */
function drawMetricsTable() {
  const keys = metricKeys();
  const base = runs.find((run) => run.number === state.baseline) ?? runs[0];
  const kinds = state.allValues ? VALUES : [state.value];
  $("#metrics-value").textContent = `${state.allValues ? "last, min, max and best" : `${state.value} values`} · best marked ★ · deltas against #${base.number}`;
  const rows = keys.flatMap((key) => kinds.map((kind, k) => metricRow(key, kind, base, k === 0, kinds.length)));
  $("#metrics-table").innerHTML = keys.length
    ? html`<table class="grid compare-grid${state.allValues ? " all-values" : ""}"><thead><tr><th>metric</th>${runHeader()}</tr></thead><tbody>${rows}</tbody></table>`.text
    : html`<p class="muted">No metrics.</p>`.text;
}

function metricRow(key, kind, base, first, count) {
  const lower = lowerIsBetter(key);
  const values = runs.map((run) => summaryValue(run.metrics[key], kind, lower));
  const best = runs.length > 1 ? bestIndex(values, lower) : -1;
  const baseValue = values[runs.indexOf(base)];
  const cells = runs.map((run, i) => {
    const value = values[i];
    const odd = value !== null && !Number.isFinite(value);
    const classes = ["num", odd ? "nonfinite" : "", i === best ? "best-cell" : "", run === base ? "baseline-cell" : ""];
    let change = "";
    if (run !== base && value !== null) {
      const found = delta(value, baseValue);
      const better = improves(found, lower);
      const tone = better === null ? "" : better ? "better" : "worse";
      change = html`<div class="delta ${tone}">${deltaText(found)}</div>`;
    } else if (run === base) {
      change = html`<div class="delta muted">baseline</div>`;
    }
    return html`<td class="${classes.filter(Boolean).join(" ")}" data-run="${run.number}" data-value="${value ?? ""}">${fmtNumber(value)}${i === best ? html`<span class="star" title="best">★</span>` : ""}${change}</td>`;
  });
  const direction = html`<span class="muted small" title="${lower ? "lower is better" : "higher is better"}">${lower ? "↓" : "↑"}</span>`;
  const name = count === 1 ? html`${key} ${direction}` : first ? html`${key} ${direction} <span class="value-kind">${kind}</span>` : html`<span class="value-kind">${kind}</span>`;
  return html`<tr data-key="${key}" data-kind="${kind}" class="${count > 1 && first ? "metric-first" : ""}"><th>${name}</th>${cells}</tr>`;
}

// --- groups -----------------------------------------------------------------------------------

/** GET /api/compare for the current grouping and value (each run alone when not grouped: the
 * metrics table still reads which metrics are errors from it). */
async function fetchCompared() {
  const seq = ++sequence.compared;
  const query = { runs: runs.map((run) => run.number).join(","), value: state.value, group_by: [...state.groupBy] };
  let answer;
  try {
    answer = await api("/api/compare", { query: { ...query, baseline: state.baseGroup || undefined } });
  } catch (error) {
    // a baseline group from the address that this grouping does not have: the first group
    if (!state.baseGroup || error.status !== 400) throw error;
    answer = await api("/api/compare", { query });
  }
  if (seq !== sequence.compared) return false; // a newer request took over
  compared = answer;
  state.baseGroup = compared.baseline;
  return true;
}

function drawGroupsTable() {
  const card = $("#groups-card");
  card.hidden = !state.groupBy.length;
  if (!state.groupBy.length || !compared) return;
  const metrics = compared.metrics;
  if (!metrics.includes(state.groupMetric)) state.groupMetric = defaultMetric(metrics) ?? "";
  fillSelect($("#group-metric"), metrics, state.groupMetric);
  const baseSelect = $("#base-group");
  baseSelect.innerHTML = compared.groups.map((g, i) => html`<option value="${i}">${g.label}</option>`.text).join("");
  baseSelect.value = String(state.baseGroup);
  const key = state.groupMetric;
  $("#groups-level").textContent = levelText(compared.confidence);
  $("#groups-count").textContent = `${compared.groups.length} groups of ${runs.length} runs by ${groupingText(state.groupBy)} · ${key} (${compared.value}, ${lowerIsBetter(key) ? "lower" : "higher"} is better)`;
  if (!key) {
    $("#groups-table").innerHTML = html`<p class="muted">No metric the runs share.</p>`.text;
    return;
  }
  const versus = new Map((compared.comparisons[key] || []).map((c) => [c.group, c]));
  const rows = compared.groups.map((group, i) => {
    const metric = group.metrics[key];
    const c = versus.get(i);
    const verdictClass = c ? (c.distinguishable === true ? "verdict-yes" : c.distinguishable === false ? "verdict-no" : "verdict-unknown") : "";
    const noise = group.noise_unknown ? html` <span class="noise-unknown" title="one run: run-to-run noise unknown">noise unknown</span>` : "";
    const compareCells = i === compared.baseline
      ? html`<td colspan="4" class="muted">baseline</td>`
      : html`<td class="num diff">${c ? fmtNumber(toNumber(c.difference)) : "—"}</td>
          <td class="num diff-ci">${c ? intervalText(c.ci) : "—"}</td>
          <td class="num p-value">${c ? pText(c.p_value) : "—"}</td>
          <td class="verdict ${verdictClass}">${c ? c.verdict : ""}</td>`;
    return html`<tr data-group="${i}" class="${i === compared.baseline ? "baseline-row" : ""}">
      <th><span class="swatch" style="background:${groupColor(i)}"></span>${group.label}${noise}</th>
      <td class="num">${group.n}</td>
      <td class="runs-cell">${group.runs.map((n) => html`<a href="${runUrl(n)}">#${n}</a> `)}</td>
      <td class="num mean">${meanText(metric)}</td>
      <td class="num ci">${intervalText(metric?.ci)}</td>
      ${compareCells}</tr>`;
  });
  $("#groups-table").innerHTML = html`<table class="grid compare-grid groups-grid"><thead><tr>
      <th>group</th><th class="num">n</th><th>runs</th><th class="num">mean ± std</th>
      <th class="num">${levelText(compared.confidence)} CI</th>
      <th class="num">Δ vs baseline</th><th class="num">Δ ${levelText(compared.confidence)} CI</th>
      <th class="num">p (Welch)</th><th>verdict</th></tr></thead><tbody>${rows}</tbody></table>`.text;
}

// --- controls ---------------------------------------------------------------------------------

function fillControls() {
  const varying = paramKeys().filter(differs);
  // each option's value is its grouping as JSON: [], ["*"], ["params.KEY"], or several keys
  // from the address (?group_by=params.A&group_by=params.B), shown as "A, B"
  const groupOptions = [[[], "none (each run)"], [["*"], "all params but the seed"], ...varying.map((k) => [[field("params", k)], k])];
  const current = groupingKey(state.groupBy);
  if (!groupOptions.some(([v]) => groupingKey(v) === current)) groupOptions.push([state.groupBy, groupingText(state.groupBy)]);
  $("#group-by").innerHTML = groupOptions.map(([v, t]) => html`<option value="${groupingKey(v)}">${t}</option>`.text).join("");
  $("#group-by").value = current;
  const colorOptions = [["", "run"], ...varying.map((k) => [`params.${k}`, k])];
  if (state.color && !colorOptions.some(([v]) => v === state.color)) colorOptions.push([state.color, state.color.slice(7)]);
  $("#color-by").innerHTML = colorOptions.map(([v, t]) => html`<option value="${v}">${t}</option>`.text).join("");
  $("#color-by").value = state.color;
  $("#band").value = state.band;
  $("#value").value = state.value;
  $("#band-label").hidden = !state.groupBy.length;
  $("#baseline-run").innerHTML = runs.map((run) => html`<option value="${run.number}">#${run.number} ${run.name}</option>`.text).join("");
  if (!runs.some((run) => run.number === state.baseline)) state.baseline = runs[0].number;
  $("#baseline-run").value = String(state.baseline);
  $("#all-values").checked = state.allValues;
}

/** Redraw what depends on the colours: chips, table headers, curves, scatter, group table. */
async function recolour() {
  setColoring();
  drawChips();
  drawParamsTable();
  drawMetricsTable();
  drawGroupsTable();
  await drawCurves();
  if (window.Plotly && $("#scatter").data) drawScatter();
}

function bindControls() {
  // a change's drawing is done (body[data-ready]) when the last change's is; an error says so
  // in a notice and keeps the page
  const settle = (promise) => {
    const seq = ++sequence.change;
    promise
      .then(() => seq === sequence.change && ready(true))
      .catch((error) => {
        if (seq !== sequence.change) return;
        console.warn(error);
        notify(error.message);
        ready(true);
      });
  };
  const change = (select, apply) =>
    $(select).addEventListener("change", () => {
      apply($(select).value);
      writeState();
      ready(false);
      settle(refreshGroups());
    });
  change("#group-by", (v) => {
    state.groupBy = JSON.parse(v);
    state.baseGroup = 0;
    $("#band-label").hidden = !state.groupBy.length;
  });
  change("#value", (v) => (state.value = v));
  change("#base-group", (v) => (state.baseGroup = Number(v)));
  const redraw = (select, apply, draw) =>
    $(select).addEventListener("change", () => {
      apply($(select).value);
      writeState();
      ready(false);
      settle(Promise.resolve().then(draw));
    });
  redraw("#band", (v) => (state.band = v), drawCurves);
  redraw("#color-by", (v) => (state.color = v), recolour);
  redraw("#group-metric", (v) => (state.groupMetric = v), drawGroupsTable);
  redraw("#baseline-run", (v) => (state.baseline = Number(v)), drawMetricsTable);
  redraw("#all-values", () => (state.allValues = $("#all-values").checked), drawMetricsTable);
  // the group charts take their colours from the theme when drawn (the runs' charts redraw
  // themselves)
  document.addEventListener("themechange", () => {
    if (state.groupBy.length) drawCurves().catch((error) => notify(error.message));
    if ($("#scatter").data) drawScatter();
    if ($("#parcoords").data) drawParcoords();
  });
}

/** Fetch the groups' statistics again (grouping, value or baseline changed) and redraw. */
async function refreshGroups() {
  if (!(await fetchCompared())) return; // a newer change is under way: it draws
  drawChips();
  drawGroupsTable();
  drawMetricsTable();
  await drawCurves();
}

/** body[data-ready]: set when the page has drawn what its controls asked for (the tests wait
 * for it). */
function ready(done) {
  if (done) document.body.dataset.ready = "true";
  else delete document.body.dataset.ready;
}

// --- parallel coordinates ---------------------------------------------------------------------

const isNumber = (value) => typeof value === "number";

/** One parcoords dimension for the values of a param (or metric) across the runs. */
function dimension(label, values) {
  const present = values.filter((v) => v !== undefined && v !== null);
  if (present.length === values.length && present.every(isNumber) && present.every(Number.isFinite)) {
    return numericDimension(label, values);
  }
  // categories: text, booleans, lists, missing values; numbers in numeric order first
  const texts = values.map((v) => (v === undefined ? MISSING : fmtParam(v)));
  const numeric = (t) => (t !== MISSING && Number.isFinite(Number(t)) ? Number(t) : null);
  const labels = [...new Set(texts)].sort((a, b) => {
    const [x, y] = [numeric(a), numeric(b)];
    if (x !== null && y !== null) return x - y;
    if ((x === null) !== (y === null)) return x === null ? 1 : -1;
    return a.localeCompare(b);
  });
  return {
    label: plotText(label),
    values: texts.map((t) => labels.indexOf(t)),
    tickvals: labels.map((_, i) => i),
    ticktext: labels.map(plotText),
    range: [-0.3, labels.length - 0.7], // lines off the axis' ends, where they would hide
  };
}

/** A numeric dimension over exactly the data's range; log-spaced values on a log axis. */
function numericDimension(label, values) {
  const min = Math.min(...values);
  const max = Math.max(...values);
  if (logSpaced(values)) {
    const [low, high] = [Math.log10(min), Math.log10(max)];
    const distinct = [...new Set(values)].sort((a, b) => a - b);
    const decades = Array.from(
      { length: Math.floor(high) - Math.ceil(low) + 1 },
      (_, i) => 10 ** (Math.ceil(low) + i),
    );
    const ticks = distinct.length <= 8 ? distinct : decades.length >= 2 ? decades : [min, max];
    return {
      label: `${plotText(label)} (log)`,
      values: values.map((v) => Math.log10(v)),
      tickvals: ticks.map((t) => Math.log10(t)),
      ticktext: ticks.map(fmtNumber),
      range: [low, high],
    };
  }
  // one value: an axis around it, on its side of zero
  const pad = min === max ? Math.abs(min) / 2 || 1 : 0;
  return { label: plotText(label), values, range: [min - pad, max + pad], tickformat: ".3~g" };
}

function drawParcoords() {
  const metric = $("#pc-metric").value;
  const keys = paramKeys().filter(differs);
  const target = $("#parcoords");
  if (!keys.length || !metric) {
    Plotly.purge(target);
    const why = keys.length ? "No metrics to compare." : "No param differs between these runs.";
    target.innerHTML = html`<p class="muted">${why}</p>`.text;
    return;
  }
  const scores = runs.map((run) => metricValue(run, metric));
  const known = scores.filter((v) => v !== null && Number.isFinite(v));
  const low = known.length ? Math.min(...known) : 0;
  // a run without a usable value sits below the others (grey would need a second trace)
  const shown = scores.map((v) => (v !== null && Number.isFinite(v) ? v : low));
  const dims = [
    ...keys.map((key) => dimension(key, runs.map((run) => chartValue(run, key)))),
    dimension(metric, shown),
  ];
  const trace = {
    type: "parcoords",
    domain: { x: [0, 0.9] }, // the colour bar goes right of the last axis
    dimensions: dims,
    line: {
      color: shown,
      colorscale: "Viridis",
      showscale: true,
      colorbar: { title: { text: plotText(metric), side: "right" }, thickness: 12, x: 1 },
    },
    labelfont: { size: 12 },
    tickfont: { size: 10 },
  };
  target.innerHTML = "";
  Plotly.react(target, [trace], { margin: { l: 60, r: 60, t: 50, b: 24 }, ...themedLayout() }, PLOT_CONFIG);
}

/** Font and background in the theme's colours, read now (charts redraw on `themechange`). */
function themedLayout() {
  const colors = themeColors();
  return { font: { size: 11, color: colors.text }, paper_bgcolor: colors.paper, plot_bgcolor: colors.paper };
}

// --- scatter ----------------------------------------------------------------------------------

function drawScatter() {
  const xKey = $("#sc-x").value;
  const yKey = $("#sc-y").value;
  const target = $("#scatter");
  if (!xKey || !yKey) {
    Plotly.purge(target);
    target.innerHTML = html`<p class="muted">Needs a param and a metric.</p>`.text;
    return;
  }
  const shown = runs.filter((run) => xKey in run.params && Number.isFinite(metricValue(run, yKey) ?? NaN));
  const xs = shown.map((run) => chartValue(run, xKey));
  const numeric = xs.every(isNumber);
  const positive = numeric && xs.every((x) => x > 0);
  const logX = positive && logSpaced(xs);
  const trace = {
    type: "scatter",
    mode: "markers+text",
    x: numeric ? xs : xs.map((x) => plotText(fmtParam(x))),
    y: shown.map((run) => metricValue(run, yKey)),
    text: shown.map((run) => `#${run.number}`),
    textposition: "top center",
    customdata: shown.map((run) => plotText(run.name)),
    hovertemplate: `%{text} %{customdata}<br>${plotText(xKey)} = %{x}<br>${plotText(yKey)} = %{y:.4~g}<extra></extra>`,
    marker: { size: 11, color: shown.map((run) => colorOf(run.number)), line: { color: themeColors().paper, width: 1 } },
  };
  const layout = {
    margin: { l: 60, r: 16, t: 16, b: 48 },
    ...themedLayout(),
    xaxis: {
      title: { text: plotText(xKey) },
      type: logX ? "log" : numeric ? "linear" : "category",
      gridcolor: themeColors().grid,
      automargin: true,
    },
    yaxis: { title: { text: plotText(yKey) }, gridcolor: themeColors().grid, automargin: true },
  };
  target.innerHTML = "";
  Plotly.react(target, [trace], layout, PLOT_CONFIG);
}

function fillSelect(select, keys, chosen) {
  select.innerHTML = keys.map((key) => html`<option value="${key}">${key}</option>`.text).join("");
  if (chosen) select.value = chosen;
}

function setUpAnalysis() {
  const metrics = metricKeys();
  const params = paramKeys();
  const varying = params.filter(differs);
  fillSelect($("#pc-metric"), metrics, defaultMetric(metrics));
  const constant = params.filter((key) => !varying.includes(key));
  fillSelect($("#sc-x"), [...varying, ...constant], varying[0] ?? params[0]);
  fillSelect($("#sc-y"), metrics, defaultMetric(metrics));
  $("#pc-metric").addEventListener("change", drawParcoords);
  $("#sc-x").addEventListener("change", drawScatter);
  $("#sc-y").addEventListener("change", drawScatter);
  $("#only-differing").addEventListener("change", drawParamsTable);
  drawWhenVisible($("#parcoords"), drawParcoords);
  drawScatter();
}

/** Call `draw` once a third of `element` is in view. For the parcoords chart: its WebGL takes
 * seconds to start in a browser without a GPU, which off screen is not worth paying for. */
function drawWhenVisible(element, draw) {
  const observer = new IntersectionObserver(
    (entries) => {
      if (!entries.some((entry) => entry.isIntersecting)) return;
      observer.disconnect();
      draw();
    },
    { threshold: 0.3 },
  );
  observer.observe(element);
}

// --- the page ---------------------------------------------------------------------------------

async function main() {
  const started = startPage("runs"); // the header's request goes with the runs'
  const refs = requestedRefs();
  if (!refs.length) {
    await started;
    $("#main").innerHTML = html`<div class="empty">No runs to compare. Select runs on the
      <a href="/">runs page</a> and press Compare.</div>`.text;
    return;
  }
  const answers = await Promise.allSettled(refs.map((ref) => api(runApi(ref))));
  await started;
  runs = answers.filter((a) => a.status === "fulfilled").map((a) => a.value);
  const failed = answers
    .map((a, i) => ({ ref: refs[i], error: a.reason }))
    .filter((f) => f.error);
  if (!runs.length) {
    showFatal(failed[0].error);
    return;
  }
  readState();
  const [found, grouped] = await Promise.all([
    api("/api/list-params", { query: { run: runs.map((run) => run.number) } }),
    fetchCompared().then(
      () => null,
      (error) => error,
    ),
  ]);
  lists = Object.fromEntries(found.lists.map((list) => [list.key, list]));
  document.title = `Compare ${runs.map((run) => `#${run.number}`).join(" ")} · expbook`;
  if (grouped) {
    // a bad group_by in the address: say so, and compare the runs ungrouped
    failed.push({ what: `group_by=${state.groupBy.join(",")}`, error: grouped });
    state.groupBy = [];
    await fetchCompared();
  }
  setColoring();
  layout(failed);
  $("#main").addEventListener("click", (event) => {
    const button = event.target.closest(".remove-run");
    if (button) setRefs(runs.map((run) => run.number).filter((n) => n !== Number(button.dataset.number)));
  });
  fillControls();
  bindControls();
  bindChartControls();
  drawParamsTable();
  drawMetricsTable();
  drawGroupsTable();
  await drawCurves(); // first: the curves are what people come for
  performance.mark("expbook:curves-drawn"); // (the tests time this)
  await plotlyLoaded; // also when no run logged a series (drawCurves did not wait for it)
  setUpAnalysis();
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  console.error(error);
  showFatal(error);
});
