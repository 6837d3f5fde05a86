// The compare page (/compare?runs=1,2,3): the runs' curves overlaid (one chart per metric key,
// one trace per run), their params side by side, a parallel-coordinates chart of the params
// that vary against a metric, and a scatter of any param against any metric.

import {
  $,
  api,
  badge,
  fmtNumber,
  fmtParam,
  html,
  runApi,
  runUrl,
  showFatal,
  startPage,
  toNumber,
} from "./common.js";
import { colorAt, fetchSeries, LineChart, loadPlotly, PLOT_CONFIG, plotText } from "./charts.js";
import { elementsHtml } from "./runtable.js";

const plotlyLoaded = loadPlotly(); // parsed while the runs' data is fetched

const POINTS = 1000; // per series: enough for a chart, small enough for 20 runs × many keys
const MISSING = "—";

let runs = []; // run details, in the order asked for
let lists = {}; // key -> the list param element-wise (/api/list-params), for lists of words
const charts = [];
const chartOptions = { xMode: "step", logY: false };

// --- the runs asked for -----------------------------------------------------------------------

function requestedRefs() {
  const text = new URLSearchParams(window.location.search).get("runs") || "";
  return [...new Set(text.split(",").map((part) => part.trim()).filter(Boolean))];
}

const colorOf = (number) => colorAt(runs.findIndex((run) => run.number === number));
const startOf = (number) => runs.find((run) => run.number === number)?.started_at ?? 0;

function setRefs(refs) {
  const url = refs.length ? `/compare?runs=${refs.join(",")}` : "/compare";
  window.location.href = url;
}

function layout(failed) {
  $("#main").innerHTML = html`
    <div class="page-head"><h1>Compare ${runs.length} runs</h1></div>
    ${failed.map((f) => html`<div class="alert">Run ${f.ref}: ${f.error.message}</div>`)}
    <div class="run-chips">${runs.map(
      (run) => html`<span class="run-chip"><span class="swatch" style="background:${colorOf(run.number)}"></span>
        <a href="${runUrl(run.number)}">#${run.number} ${run.name}</a>${badge(run.status)}
        <button type="button" class="remove-run" data-number="${run.number}" title="Leave out of the comparison">×</button></span>`,
    )}</div>
    <section class="section">
      <div class="chart-controls">
        <h2 style="margin:0">Metrics</h2>
        <label>x axis <select id="x-mode"><option value="step">step</option><option value="epoch">epoch</option>
          <option value="time">relative time</option></select></label>
        <label class="check-label"><input type="checkbox" id="log-y"> log y</label>
        <span class="muted small">drag to zoom · double-click to reset</span>
      </div>
      <div id="charts" class="charts"><p class="muted">Loading series…</p></div>
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
    <div class="cards cards-2">
      <section class="card" id="params-card">
        <h2>Params <span class="card-tools"><label class="check-label"><input type="checkbox" id="only-differing"> only differing</label></span></h2>
        <div id="params-table" class="table-scroll"></div>
      </section>
      <section class="card" id="metrics-card">
        <h2>Metrics <span class="count small">latest values</span></h2>
        <div id="metrics-table" class="table-scroll"></div>
      </section>
    </div>`;
}

// --- keys and values --------------------------------------------------------------------------

const SPLITS = ["train", "training", "valid", "validation", "val", "eval", "test", "dev"];

/** [split, metric] of a key: "valid/loss" -> ["valid", "loss"] (as the server groups them). */
function splitKey(key) {
  for (const separator of ["/", "_"]) {
    const at = key.indexOf(separator);
    if (at > 0 && at < key.length - 1 && SPLITS.includes(key.slice(0, at).toLowerCase())) {
      return [key.slice(0, at), key.slice(at + 1)];
    }
  }
  return [null, key];
}

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
  const refs = runs.map((run) => String(run.number));
  const [series] = await Promise.all([fetchSeries(refs, keys, { points: POINTS }), plotlyLoaded]);
  container.innerHTML = "";
  // Up to 10 runs each chart has a legend; beyond, the run chips above are the legend (20
  // legends of 20 entries would crowd the charts and double their drawing time).
  const legend = runs.length <= 10;
  const height = 280 + (legend ? 18 * Math.ceil(runs.length / 4) : 0);
  for (const key of keys) {
    const card = document.createElement("div");
    card.className = "chart-card";
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

function bindChartControls() {
  const update = () => {
    chartOptions.xMode = $("#x-mode").value;
    chartOptions.logY = $("#log-y").checked;
    for (const chart of charts) chart.setOptions(chartOptions);
  };
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
    ? html`<table class="grid"><thead><tr><th>param</th>${runHeader()}</tr></thead><tbody>${rows}</tbody></table>`.text
    : html`<p class="muted">${only ? "No param differs between these runs." : "No params."}</p>`.text;
}

function drawMetricsTable() {
  const keys = metricKeys();
  const rows = keys.map(
    (key) => html`<tr><th>${key}</th>${runs.map((run) => {
      const value = metricValue(run, key);
      const odd = value !== null && !Number.isFinite(value);
      return html`<td class="num${odd ? " nonfinite" : ""}">${fmtNumber(value)}</td>`;
    })}</tr>`,
  );
  $("#metrics-table").innerHTML = keys.length
    ? html`<table class="grid"><thead><tr><th>metric</th>${runHeader()}</tr></thead><tbody>${rows}</tbody></table>`.text
    : html`<p class="muted">No metrics.</p>`.text;
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

const spread = (xs) => {
  const gaps = xs.slice(1).map((x, i) => x - xs[i]);
  return Math.max(...gaps) / Math.min(...gaps);
};

/** Whether values are spread over decades or spaced evenly on a log scale (1e-4, 3e-4, 1e-3,
 * 3e-3: a learning-rate sweep), where a linear axis would crowd all but the largest. */
function logSpaced(values) {
  const distinct = [...new Set(values)].sort((a, b) => a - b);
  const [min, max] = [distinct[0], distinct[distinct.length - 1]];
  if (!(min > 0) || max / min < 10) return false;
  if (max / min >= 100 || distinct.length === 2) return true;
  return spread(distinct.map(Math.log10)) < spread(distinct);
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
  Plotly.react(target, [trace], { margin: { l: 60, r: 60, t: 50, b: 24 }, font: { size: 11 } }, PLOT_CONFIG);
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
    marker: { size: 11, color: shown.map((run) => colorOf(run.number)), line: { color: "#fff", width: 1 } },
  };
  const layout = {
    margin: { l: 60, r: 16, t: 16, b: 48 },
    font: { size: 11 },
    xaxis: {
      title: { text: plotText(xKey) },
      type: logX ? "log" : numeric ? "linear" : "category",
      gridcolor: "#eef0f3",
      automargin: true,
    },
    yaxis: { title: { text: plotText(yKey) }, gridcolor: "#eef0f3", automargin: true },
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
  const found = await api("/api/list-params", { query: { run: runs.map((run) => run.number) } });
  lists = Object.fromEntries(found.lists.map((list) => [list.key, list]));
  document.title = `Compare ${runs.map((run) => `#${run.number}`).join(" ")} · expbook`;
  layout(failed);
  $("#main").addEventListener("click", (event) => {
    const button = event.target.closest(".remove-run");
    if (button) setRefs(runs.map((run) => run.number).filter((n) => n !== Number(button.dataset.number)));
  });
  bindChartControls();
  drawParamsTable();
  drawMetricsTable();
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
