// A sweep's page (/sweeps/NAME): its trials (each a run), the best so far over time, parallel
// coordinates of every trial's params and value, the params' importance, and the trials' curves
// of the objective with the pruned ones marked where they stopped. Everything comes from
// GET /api/sweeps/NAME (which computes best, importance and the axes) and GET /api/series.
// While the sweep runs, the page refreshes every 3 s.
//
// When the sweep repeats configurations (`expbook.repeats`), its finished trials are grouped by
// configuration: a table of configurations with n, mean ± std and the CI (at the API's
// confidence), each compared with the best by Welch's t-test (GET /api/compare with explicit
// groups; only the best configurations when their runs exceed its 400), and the trial curves
// can show each configuration's mean with its band instead (GET /api/compare/series).

import {
  $,
  api,
  experimentUrl,
  fmtDuration,
  fmtInt,
  fmtNumber,
  fmtParam,
  fmtTime,
  html,
  poll,
  runUrl,
  showFatal,
  startPage,
  timeHtml,
  toNumber,
} from "./common.js";
import { colorAt, fetchSeries, finite, levelText, loadPlotly, PLOT_CONFIG, plotText, themeColors, timeUnit } from "./charts.js";
import { countsHtml, stateBadge, sweepUrl } from "./sweeps.js";
import { groupTraces, intervalText, meanText, pText } from "./groupcharts.js";

const plotlyLoaded = loadPlotly(); // parsed while the sweep's data is fetched

const REFRESH_MS = 3000;
const CURVE_POINTS = 300; // per trial: a sweep may have hundreds
const COMPARE_BEST = 5;
const STATE_COLORS = {
  finished: "#8da4bf",
  pruned: "#0e7490",
  failed: "#dc2626",
  crashed: "#7f1d1d",
  running: "#2563eb",
  stopped: "#9ca3af",
  queued: "#9ca3af",
};
const BEST_COLOR = "#f59e0b";
// Colours of the page's theme, read when a chart is drawn (charts redraw on `themechange`).
const FONT_FAMILY = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif";
const fontNow = () => ({ family: FONT_FAMILY, size: 11, color: themeColors().text });
const axisNow = () => ({ gridcolor: themeColors().grid, linecolor: themeColors().grid, zeroline: false, automargin: true });
/** The layout keys every chart of the page shares: font and background from the theme. */
const themed = () => ({ font: fontNow(), paper_bgcolor: themeColors().paper, plot_bgcolor: themeColors().paper });

const ref = decodeURIComponent(window.location.pathname.replace(/^\/sweeps\//, ""));
let sweep = null; // GET /api/sweeps/REF
let sort = { key: "number", desc: false };
let drawnTrials = ""; // the finished trials the heavy charts show (redrawn when they change)
let refresher = null;

/** A param value for the page: numbers to 6 significant digits (the exact value as a tooltip). */
function fmtValue(value) {
  if (typeof value === "number" && Number.isFinite(value) && !Number.isInteger(value)) {
    return String(Number(value.toPrecision(6)));
  }
  return fmtParam(value);
}

const sweepApi = () => `/api/sweeps/${encodeURIComponent(ref)}`;

// --- layout -----------------------------------------------------------------------------------

function layout() {
  $("#main").innerHTML = html`
    <div class="page-head">
      <h1><span class="muted" style="font-weight:400">Sweep</span> <span id="sweep-name"></span></h1>
      <span id="sweep-state"></span>
      <span id="sweep-about" class="muted"></span>
      <span class="spacer"></span>
      <a id="compare-best" class="btn" hidden>Compare the best ${COMPARE_BEST}</a>
    </div>
    <div id="sweep-facts" class="sweep-facts"></div>
    <div id="sweep-best" class="best-line"></div>
    <div class="cards cards-2">
      <section class="card" id="best-card">
        <h2>Best so far <span class="card-tools"><label>x <select id="bsf-x">
          <option value="count">trials completed</option><option value="time">time since start</option>
        </select></label></span></h2>
        <div id="best-so-far" class="chart"></div>
      </section>
      <section class="card" id="importance-card">
        <h2>Parameter importance <span id="importance-note" class="count small"></span></h2>
        <div id="importance" class="chart"></div>
      </section>
    </div>
    <section class="card section" id="parallel-card">
      <h2>Parallel coordinates <span id="parallel-note" class="count small"></span></h2>
      <div id="parallel" class="chart chart-wide"></div>
    </section>
    <section class="card section" id="configs-card" hidden>
      <h2>Configurations <span id="configs-note" class="count small"></span></h2>
      <div id="configs" class="table-scroll"></div>
    </section>
    <section class="card section" id="curves-card">
      <h2>Trial curves <span id="curves-note" class="count small"></span>
        <span class="card-tools" id="curves-tools" hidden><label>show <select id="curves-mode">
          <option value="trials">each trial</option><option value="ci">configuration means, CI</option>
          <option value="minmax">configuration means, min–max</option></select></label></span></h2>
      <div id="curves" class="chart chart-wide"></div>
    </section>
    <section class="card section" id="trials-card">
      <h2>Trials <span id="trials-count" class="count"></span></h2>
      <div id="trials" class="table-scroll"></div>
    </section>
    <details class="card section" id="spec-card"><summary><b>Spec</b> <span class="muted small">as given</span></summary>
      <pre id="spec" class="sweep-spec"></pre></details>`.text;
  $("#bsf-x").addEventListener("change", drawBestSoFar);
  $("#curves-mode").addEventListener("change", () => {
    document.body.dataset.curves = "";
    drawCurves()
      .then(() => (document.body.dataset.curves = $("#curves-mode").value))
      .catch(showFatal);
  });
  $("#trials").addEventListener("click", (event) => {
    const header = event.target.closest("th[data-sort]");
    if (!header) return;
    const key = header.dataset.sort;
    sort = { key, desc: sort.key === key ? !sort.desc : key !== "number" && !minimise(key) };
    drawTrials();
  });
}

/** Whether lower is better for a sort key: the objectives by their goal, else ascending. */
function minimise(key) {
  const metric = sweep.metrics.find((m, i) => key === `value${i}`);
  return metric ? metric.goal !== "maximize" : true;
}

// --- head -------------------------------------------------------------------------------------

function drawHead() {
  $("#sweep-name").textContent = sweep.name;
  $("#sweep-state").innerHTML = stateBadge(sweep.state).text;
  const metric = sweep.metric ? `${sweep.metric.goal} ${sweep.metric.name}` : "no metric";
  $("#sweep-about").textContent = `${sweep.method ?? "?"} search · ${metric} · ${fmtInt(sweep.trial_count)} trials`;
  document.title = `Sweep ${sweep.name} · expbook`;
  const end = sweep.ended_at ?? (sweep.state === "running" ? Date.now() / 1000 : sweep.updated_at);
  $("#sweep-facts").innerHTML = html`
    ${sweep.experiment ? html`<span>experiment <a href="${experimentUrl(sweep.experiment)}">${sweep.experiment}</a></span>` : ""}
    <span>created ${timeHtml(sweep.created_at)}</span>
    ${sweep.ended_at ? html`<span>ended ${timeHtml(sweep.ended_at)}</span>` : ""}
    <span>${fmtDuration(end - sweep.created_at)}</span>
    <span>${countsHtml(sweep.counts)}</span>
    ${sweep.spec_error ? html`<span class="alert-inline">spec: ${sweep.spec_error}</span>` : ""}`.text;
  const ranked = rankedTrials().slice(0, COMPARE_BEST);
  const compare = $("#compare-best");
  compare.hidden = ranked.length < 2;
  compare.textContent = `Compare the best ${ranked.length}`;
  compare.href = `/compare?runs=${ranked.map((t) => t.run_number).join(",")}`;
  drawBest();
}

/** Trials with a run and a value of the first objective, best first. */
function rankedTrials() {
  const sign = sweep.metric?.goal === "maximize" ? -1 : 1;
  return sweep.trials
    .filter((t) => t.run_number !== null && finite(t.value) !== null && t.state === "finished")
    .sort((a, b) => sign * (finite(a.value) - finite(b.value)) || a.number - b.number);
}

function drawBest() {
  const best = sweep.best;
  const target = $("#sweep-best");
  if (!best) {
    const why = sweep.metric ? `no trial has finished with ${sweep.metric.name} yet` : "the sweep has no metric";
    target.innerHTML = html`<span class="muted">Best: ${why}.</span>`.text;
    return;
  }
  const params = Object.entries(best.params).map(([k, v]) => html`<code title="${fmtParam(v)}">${k}=${fmtValue(v)}</code>`);
  const run = best.run_number !== null ? html` (<a href="${runUrl(best.run_number)}">#${best.run_number}</a>)` : "";
  const noise = sweep.noise ? html`<span class="muted small">${sweep.noise}</span>` : "";
  target.innerHTML = html`<span class="best-run">best: trial <b>${best.number}</b>${run}
    ${sweep.metric.name} = <b>${fmtNumber(best.value)}</b> · ${params}</span>${noise}`.text;
}

// --- trials table -----------------------------------------------------------------------------

function sortValue(trial, key) {
  if (key === "number") return trial.number;
  if (key === "run") return trial.run_number;
  if (key === "state") return trial.state;
  if (key === "pruned") return trial.pruned_step;
  if (key === "duration") return trial.duration;
  if (key.startsWith("value")) return finite(trial.values?.[Number(key.slice(5))]);
  return trial.params[key.slice(6)];
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1; // missing values last, either way
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b));
}

function sortedTrials() {
  const { key, desc } = sort;
  return [...sweep.trials].sort((a, b) => {
    const [x, y] = [sortValue(a, key), sortValue(b, key)];
    if (x === null || x === undefined || y === null || y === undefined) return compare(x, y);
    return (desc ? -1 : 1) * compare(x, y) || a.number - b.number;
  });
}

function header(label, key, cls = "") {
  const arrow = sort.key === key ? (sort.desc ? " ▼" : " ▲") : "";
  return html`<th class="sortable ${cls}" data-sort="${key}">${label}<span class="arrow">${arrow}</span></th>`;
}

function trialRow(trial, params) {
  const best = sweep.best?.number === trial.number;
  const values = sweep.metrics.map((_, i) => {
    const value = toNumber(trial.values?.[i] ?? null);
    const odd = value !== null && !Number.isFinite(value);
    return html`<td class="num${odd ? " nonfinite" : ""}">${fmtNumber(value)}</td>`;
  });
  const run = trial.run_number !== null ? html`<a href="${runUrl(trial.run_number)}">#${trial.run_number}</a>` : html`<span class="muted">—</span>`;
  const error = trial.error ? html` <span class="trial-error" title="${trial.error}">!</span>` : "";
  return html`<tr class="${best ? "best" : ""}" data-trial="${trial.number}">
    <td class="num">${trial.number}${best ? html`<span class="star" title="best trial">★</span>` : ""}</td>
    <td>${run}</td>
    <td>${stateBadge(trial.state)}${error}</td>
    ${params.map((key) =>
      key in trial.params
        ? html`<td class="param" title="${fmtParam(trial.params[key])}">${fmtValue(trial.params[key])}</td>`
        : html`<td class="param muted">—</td>`,
    )}
    ${values}
    <td class="num">${trial.pruned_step ?? html`<span class="muted">—</span>`}</td>
    <td class="num nowrap">${trial.duration === null ? html`<span class="muted">—</span>` : fmtDuration(trial.duration)}</td>
    <td class="nowrap">${trial.started_at ? fmtTime(trial.started_at, { seconds: true }) : ""}</td></tr>`;
}

function drawTrials() {
  const params = sweep.parameters.filter((p) => p.kind !== "constant").map((p) => p.name);
  const known = new Set(params);
  for (const trial of sweep.trials) for (const key of Object.keys(trial.params)) known.has(key) || (known.add(key), params.push(key));
  $("#trials-count").textContent = fmtInt(sweep.trials.length);
  if (!sweep.trials.length) {
    $("#trials").innerHTML = html`<p class="muted">No trials yet.</p>`.text;
    return;
  }
  const head = html`<tr>${header("Trial", "number", "num")}${header("Run", "run")}${header("State", "state")}
    ${params.map((key) => header(key, `param:${key}`, "param-head"))}
    ${sweep.metrics.map((m, i) => header(m.name, `value${i}`, "num metric-head"))}
    ${header("Pruned at", "pruned", "num")}${header("Duration", "duration", "num")}<th>Started</th></tr>`;
  $("#trials").innerHTML = html`<table class="runs sweep-trials"><thead>${head}</thead>
    <tbody>${sortedTrials().map((trial) => trialRow(trial, params))}</tbody></table>`.text;
}

// --- best so far ------------------------------------------------------------------------------

function drawBestSoFar() {
  const target = $("#best-so-far");
  const points = sweep.best_so_far;
  if (!points.length) {
    say(target, html`No trial has a value yet.`);
    return;
  }
  const byTime = $("#bsf-x").value === "time";
  const span = points[points.length - 1].ended_at - sweep.created_at;
  const unit = timeUnit(span);
  const xs = points.map((p) => (byTime ? (p.ended_at - sweep.created_at) / unit.scale : p.count));
  const hover = points.map((p) => `trial ${p.number}${p.run_number !== null ? ` (#${p.run_number})` : ""} · ${p.state}`);
  const traces = [
    {
      type: "scatter",
      mode: "markers",
      name: "trial value",
      x: xs,
      y: points.map((p) => finite(p.value)),
      text: hover,
      marker: { color: points.map((p) => STATE_COLORS[p.state] ?? "#9ca3af"), size: 7, opacity: 0.75 },
      hovertemplate: "%{text}<br>%{y:.4~g}<extra></extra>",
    },
    {
      type: "scatter",
      mode: "lines",
      name: "best so far",
      x: xs,
      y: points.map((p) => finite(p.best)),
      line: { color: BEST_COLOR, width: 2.5, shape: "hv" },
      hovertemplate: "best so far %{y:.4~g}<extra></extra>",
    },
  ];
  const layout = {
    margin: { l: 56, r: 12, t: 8, b: 40 },
    ...themed(),
    showlegend: true,
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    xaxis: {
      ...axisNow(),
      title: { text: byTime ? `time since the sweep started (${unit.label})` : "trials completed" },
      dtick: byTime ? undefined : integerStep(points.length),
    },
    yaxis: { ...axisNow(), title: { text: plotText(sweep.metric.name) }, type: logScale(points) ? "log" : "linear", exponentformat: "power" },
  };
  return plot(target, traces, layout, PLOT_CONFIG);
}

/** The tick step of an axis of whole numbers up to `n`: 1 for a few, else Plotly's choice. */
const integerStep = (n) => (n <= 10 ? 1 : undefined);

/** A log y axis when the values are positive and span more than two decades (a loss). */
function logScale(points) {
  const values = points.map((p) => finite(p.value)).filter((v) => v !== null);
  return values.length > 1 && Math.min(...values) > 0 && Math.max(...values) / Math.min(...values) > 100;
}

// --- importance -------------------------------------------------------------------------------

function drawImportance() {
  const target = $("#importance");
  const found = sweep.importance;
  $("#importance-note").textContent = found.length ? sweep.importance_note ?? "" : "";
  if (!found.length) {
    say(target, html`${sweep.importance_note || "Not enough finished trials yet."}`);
    return;
  }
  const shown = [...found].reverse(); // the most important at the top
  const trace = {
    type: "bar",
    orientation: "h",
    x: shown.map((item) => item.importance),
    y: shown.map((item) => plotText(item.param)),
    text: shown.map((item) => fmtNumber(item.importance)),
    textposition: "auto",
    marker: { color: "#4e79a7" },
    hovertemplate: "%{y}: %{x:.3f}<extra></extra>",
  };
  const layout = {
    margin: { l: 12, r: 12, t: 8, b: 40 },
    ...themed(),
    xaxis: { ...axisNow(), title: { text: "importance (normalised: they sum to 1)" }, rangemode: "tozero" },
    yaxis: { ...axisNow(), gridcolor: "rgba(0,0,0,0)" },
    bargap: 0.35,
  };
  return plot(target, [trace], layout, PLOT_CONFIG);
}

// --- parallel coordinates ---------------------------------------------------------------------

/** A Plotly parcoords dimension from an axis of the API: its coordinates (log10 of the values
 * on a log axis, the index of the value on a categorical one) and ticks in the user's values. */
function dimension(axis) {
  const pad = axis.categorical ? 0.3 : axis.low === axis.high ? Math.abs(axis.low) / 2 || 1 : 0;
  return {
    label: plotText(axis.log ? `${axis.name} (log)` : axis.name),
    values: axis.values,
    range: [axis.low - pad, axis.high + pad],
    tickvals: axis.ticks.map(([at]) => at),
    ticktext: axis.ticks.map(([, label]) => plotText(label)),
  };
}

function drawParallel() {
  const target = $("#parallel");
  const parallel = sweep.parallel;
  $("#parallel-note").textContent = parallel.trials.length ? parallel.note ?? "" : "";
  if (!parallel.trials.length) {
    say(target, html`${parallel.note || "No trial has a value yet."}`);
    return;
  }
  const values = parallel.values.map(finite);
  const trace = {
    type: "parcoords",
    domain: { x: [0, 0.92] }, // the colour bar goes right of the last axis
    dimensions: parallel.axes.map(dimension),
    line: {
      color: values,
      colorscale: "Viridis",
      reversescale: sweep.metric.goal !== "maximize", // brighter is better
      showscale: true,
      colorbar: { title: { text: plotText(sweep.metric.name), side: "right" }, thickness: 12, x: 1 },
    },
    labelfont: { size: 12 },
    tickfont: { size: 10 },
  };
  return plot(target, [trace], { margin: { l: 60, r: 60, t: 50, b: 24 }, ...themed() }, PLOT_CONFIG);
}

// --- curves -----------------------------------------------------------------------------------

async function drawCurves() {
  const target = $("#curves");
  const metric = sweep.metric?.name;
  const mode = $("#curves-mode").value;
  if (mode !== "trials" && metric && configGroups().length) {
    await drawConfigCurves(target, metric, mode);
    return;
  }
  const trials = sweep.trials.filter((t) => t.run_number !== null);
  if (!metric || !trials.length) {
    say(target, html`${metric ? "No trial has a run yet." : "The sweep has no metric."}`);
    return;
  }
  const byRun = new Map(trials.map((t) => [t.run_number, t]));
  const series = await fetchSeries([...byRun.keys()].map(String), [metric], { points: CURVE_POINTS });
  const pruned = trials.filter((t) => t.state === "pruned").length;
  $("#curves-note").textContent = `${metric} of ${fmtInt(series.length)} trials` + (pruned ? ` · ${pruned} pruned, each ending at ×` : "");
  if (!series.length) {
    say(target, html`No trial logged ${metric} as a series.`);
    return;
  }
  const shownStates = new Set();
  const traces = [];
  const ends = { x: [], y: [], text: [] };
  const order = (s) => (byRun.get(s.run).number === sweep.best?.number ? 1 : 0); // the best on top
  for (const s of [...series].sort((a, b) => order(a) - order(b))) {
    const trial = byRun.get(s.run);
    const best = trial.number === sweep.best?.number;
    const group = best ? "best" : trial.state;
    const y = s.values.map(finite);
    traces.push({
      type: "scatter",
      mode: s.steps.length === 1 ? "markers" : "lines",
      name: best ? `best (trial ${trial.number})` : trial.state,
      legendgroup: group,
      showlegend: !shownStates.has(group),
      x: s.steps,
      y,
      line: { color: best ? BEST_COLOR : STATE_COLORS[trial.state] ?? "#9ca3af", width: best ? 2.5 : trial.state === "pruned" ? 1.8 : 1.2 },
      opacity: best ? 1 : trial.state === "pruned" ? 0.9 : 0.7,
      hovertemplate: `trial ${trial.number} (#${trial.run_number}) · ${trial.state}<br>step %{x}: %{y:.4~g}<extra></extra>`,
      meta: { trial: trial.number, run: trial.run_number, state: trial.state },
    });
    shownStates.add(group);
    if (trial.state === "pruned" && s.steps.length) {
      const at = stopIndex(s, trial.pruned_step);
      ends.x.push(s.steps[at]);
      ends.y.push(y[at]);
      ends.text.push(`trial ${trial.number} (#${trial.run_number}) pruned at step ${s.steps[at]}`);
    }
  }
  if (ends.x.length) {
    traces.push({
      type: "scatter",
      mode: "markers",
      name: "pruned here",
      x: ends.x,
      y: ends.y,
      text: ends.text,
      marker: { symbol: "x", size: 10, color: STATE_COLORS.pruned, line: { width: 1 } },
      hovertemplate: "%{text}: %{y:.4~g}<extra></extra>",
      meta: { pruned: true },
    });
  }
  const values = series.flatMap((s) => s.values.map(finite)).filter((v) => v !== null);
  const log = values.length > 1 && Math.min(...values) > 0 && Math.max(...values) / Math.min(...values) > 100;
  const layout = {
    margin: { l: 56, r: 12, t: 8, b: 40 },
    ...themed(),
    hovermode: "closest",
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    xaxis: { ...axisNow(), title: { text: "step" }, dtick: integerStep(Math.max(...series.map((s) => s.steps[s.steps.length - 1] ?? 0))) },
    yaxis: { ...axisNow(), title: { text: plotText(metric) }, type: log ? "log" : "linear", exponentformat: "power" },
  };
  return plot(target, traces, layout, PLOT_CONFIG);
}

/** Where a pruned trial stopped: its pruned step's point (the last at or before it), else the
 * series' last point. */
function stopIndex(series, step) {
  if (step === null || step === undefined) return series.steps.length - 1;
  let at = 0;
  for (let i = 0; i < series.steps.length && series.steps[i] <= step; i++) at = i;
  return at;
}

// --- configurations over repeats ---------------------------------------------------------------

/** The finished trials with a run, grouped by configuration (their repeats), in configuration
 * order; [] unless some configuration was repeated. */
function configGroups() {
  const groups = new Map();
  for (const trial of sweep.trials) {
    if (trial.state !== "finished" || trial.run_number === null) continue;
    if (!groups.has(trial.config)) groups.set(trial.config, []);
    groups.get(trial.config).push(trial);
  }
  const found = [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([config, trials]) => ({ config, trials }));
  return found.some((g) => g.trials.length > 1) ? found : [];
}

const groupQuery = (groups) => groups.map((g) => g.trials.map((t) => t.run_number).join(","));

/** The most runs one GET /api/compare (or /api/compare/series, of one key) takes (the API's
 * MAX_RUNS). */
const MAX_COMPARED_RUNS = 400;

/** The configurations to compare: all of them while their runs fit in one request, else the
 * best ones (by the mean of their trials' values, the sweep's goal deciding) that fit, the
 * sweep's best first among them; in configuration order. -> {shown, total} */
function comparedConfigs(groups) {
  const runs = (list) => list.reduce((sum, g) => sum + g.trials.length, 0);
  if (runs(groups) <= MAX_COMPARED_RUNS) return { shown: groups, total: groups.length };
  const sign = sweep.metric?.goal === "maximize" ? -1 : 1;
  const mean = (g) => {
    const values = g.trials.map((t) => finite(t.value)).filter((v) => v !== null);
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
  };
  const score = (g) => (g.config === sweep.best?.config ? -Infinity : mean(g) === null ? Infinity : sign * mean(g));
  const ranked = [...groups].sort((a, b) => score(a) - score(b) || a.config - b.config);
  const chosen = [];
  let count = 0;
  for (const g of ranked) {
    if (count + g.trials.length > MAX_COMPARED_RUNS) continue;
    chosen.push(g);
    count += g.trials.length;
  }
  return { shown: chosen.sort((a, b) => a.config - b.config), total: groups.length };
}

/** "6 configurations", or "best 40 of 250 configurations" when only the best fit. */
const configsText = ({ shown, total }) =>
  shown.length === total ? `${total} configurations` : `best ${shown.length} of ${total} configurations`;

/** The CI's level in the curves' choice, once an answer says it. */
function showLevel(confidence) {
  const option = $('#curves-mode option[value="ci"]');
  if (option) option.textContent = `configuration means, ${levelText(confidence)} CI`;
}

/** The configurations table: each one's n, mean ± std and CI of the metric over its repeats,
 * compared with the best configuration (Welch), all computed by GET /api/compare. */
async function drawConfigs() {
  const all = configGroups();
  const card = $("#configs-card");
  card.hidden = !all.length || !sweep.metric;
  $("#curves-tools").hidden = card.hidden;
  if (card.hidden) return;
  const compared = comparedConfigs(all);
  const groups = compared.shown;
  const metric = sweep.metric.name;
  const bestIndex = Math.max(0, groups.findIndex((g) => g.config === sweep.best?.config));
  let found;
  try {
    found = await api("/api/compare", { query: { group: groupQuery(groups), metrics: metric, baseline: bestIndex } });
  } catch (error) {
    // said in the card, in one line; the rest of the page stays
    $("#configs-note").textContent = configsText(compared);
    $("#configs").innerHTML = html`<p class="alert configs-error">Could not compare the configurations: ${error.message}</p>`.text;
    return;
  }
  showLevel(found.confidence);
  const versus = new Map((found.comparisons[metric] || []).map((c) => [c.group, c]));
  const level = levelText(found.confidence);
  $("#configs-note").textContent = `${configsText(compared)} · ${metric} over their finished repeats (each run's last value) · each against the best by Welch's t-test`;
  const rows = found.groups.map((group, i) => {
    const c = versus.get(i);
    const best = i === found.baseline;
    return html`<tr data-config="${groups[i].config}" class="${best ? "best" : ""}">
      <th><span class="swatch" style="background:${colorAt(i)}"></span>${group.label}${best ? html`<span class="star" title="best configuration">★</span>` : ""}</th>
      <td class="num">${group.n}</td>
      <td>${group.runs.map((n) => html`<a href="${runUrl(n)}">#${n}</a> `)}</td>
      <td class="num mean">${meanText(group.metrics[metric])}</td>
      <td class="num ci">${intervalText(group.metrics[metric]?.ci)}</td>
      ${best ? html`<td colspan="3" class="muted">the best</td>` : html`<td class="num diff">${c ? fmtNumber(toNumber(c.difference)) : "—"}</td>
        <td class="num p-value">${c ? pText(c.p_value) : "—"}</td><td class="verdict">${c ? c.verdict : ""}</td>`}</tr>`;
  });
  $("#configs").innerHTML = html`<table class="grid compare-grid sweep-configs"><thead><tr><th>configuration</th>
    <th class="num">n</th><th>runs</th><th class="num">mean ± std</th><th class="num">${level} CI</th>
    <th class="num">Δ vs best</th><th class="num">p (Welch)</th><th>verdict</th></tr></thead>
    <tbody>${rows}</tbody></table>`.text;
}

/** Each configuration's mean curve with its band (GET /api/compare/series). */
async function drawConfigCurves(target, metric, band) {
  const compared = comparedConfigs(configGroups());
  let found;
  try {
    found = await api("/api/compare/series", { query: { group: groupQuery(compared.shown), key: metric, points: CURVE_POINTS } });
  } catch (error) {
    $("#curves-note").textContent = "";
    say(target, html`Could not draw the configurations' means: ${error.message}`);
    return;
  }
  showLevel(found.confidence);
  const bandText = band === "ci" ? `${levelText(found.confidence)} CI` : "min–max";
  const subset = compared.shown.length === compared.total ? "" : ` · ${configsText(compared)}`;
  $("#curves-note").textContent = `${metric}: mean of each configuration's finished repeats with its ${bandText} band${subset}`;
  const traces = groupTraces(found.series, found.groups, { band, color: colorAt, confidence: found.confidence });
  const layout = {
    margin: { l: 56, r: 12, t: 8, b: 40 },
    ...themed(),
    hovermode: "closest",
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    xaxis: { ...axisNow(), title: { text: "step" } },
    yaxis: { ...axisNow(), title: { text: plotText(metric) }, exponentformat: "power" },
  };
  return plot(target, traces, layout, PLOT_CONFIG);
}

// --- the page ---------------------------------------------------------------------------------

/** Draw (or update) a chart in `target`, which may hold a message instead of a chart. */
function plot(target, traces, layout, config) {
  if (!target._fullLayout) target.innerHTML = ""; // a message, not a chart: make room
  target.classList.remove("chart-message");
  return Plotly.react(target, traces, layout, config);
}

/** Say why there is no chart, in its place (a few lines high, not a chart's height). */
function say(target, message) {
  Plotly.purge(target);
  target.classList.add("chart-message");
  target.innerHTML = html`<p class="muted">${message}</p>`.text;
}

/** The finished trials and their values: the heavy charts change only when these do. */
const trialsSignature = () =>
  JSON.stringify(sweep.trials.filter((t) => t.state !== "running" && t.state !== "queued").map((t) => [t.number, t.state, t.value]));

async function drawAll() {
  drawHead();
  drawTrials();
  $("#spec").textContent = JSON.stringify(sweep.spec, null, 2);
  await plotlyLoaded;
  await drawBestSoFar();
  const signature = trialsSignature();
  if (signature !== drawnTrials) {
    drawnTrials = signature;
    await Promise.all([drawImportance(), drawParallel(), drawCurves(), drawConfigs()]);
  }
}

async function refresh() {
  sweep = await api(sweepApi());
  await drawAll();
  if (sweep.state !== "running" && refresher) {
    refresher.stop();
    refresher = null;
  }
}

async function main() {
  const started = startPage("sweeps");
  sweep = await api(sweepApi());
  await started;
  if (sweep.name !== ref) history.replaceState(null, "", sweepUrl(sweep.name)); // a UUID prefix
  layout();
  await drawAll();
  document.addEventListener("themechange", () => {
    drawnTrials = ""; // every chart again, in the new colours
    drawAll().catch(showFatal);
  });
  if (sweep.state === "running") refresher = poll(refresh, REFRESH_MS);
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  console.error(error);
  showFatal(error);
});
