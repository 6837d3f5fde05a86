// Metric charts drawn with Plotly (the global `Plotly`), shared by the run and compare pages.
//
// A LineChart shows some (run, key) series, fetched from GET /api/series already downsampled
// by the server to about `points` points per series. When the user zooms in, the chart asks
// again for the visible step range only, so the detail appears; a double click (autorange)
// brings the whole range back.

import { api, toNumber } from "./common.js";

let plotlyLoading = null;

/**
 * Load plotly.js (the global `Plotly`, from the plotly Python package) once. Pages call this
 * first thing, so the browser parses it while their API requests are under way.
 */
export function loadPlotly() {
  plotlyLoading ??= new Promise((resolve, reject) => {
    if (window.Plotly) {
      resolve(window.Plotly);
      return;
    }
    const script = document.createElement("script");
    script.src = "/vendor/plotly.min.js";
    script.onload = () => resolve(window.Plotly);
    script.onerror = () => reject(new Error("could not load /vendor/plotly.min.js"));
    document.head.append(script);
  });
  return plotlyLoading;
}

const PLOT_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;" };

/**
 * Text for Plotly's trace names, hover templates, axis and dimension labels, as text: Plotly
 * reads tags in them (`<b>`, `<a href>`, `<br>`) as markup, and reads entities back as the
 * characters they stand for, so a run named `<b>x</b>` shows as written.
 */
export const plotText = (text) => String(text).replace(/[&<>]/g, (c) => PLOT_ESCAPES[c]);

/** What an epoch axis shows when none of its series has epochs. */
export const NO_EPOCHS = "No epochs were logged for these series: choose step or time";

/** At most this many (run, key) series per /api/series request (the API's limit). */
export const MAX_SERIES = 400;

/** Distinct colours for runs or keys (Tableau 10, then more). */
export const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#bab0ac", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
  "#17becf", "#bcbd22", "#393b79", "#637939",
];

export const colorAt = (i) => PALETTE[i % PALETTE.length];

export const PLOT_CONFIG = {
  displaylogo: false,
  responsive: true,
  modeBarButtonsToRemove: ["lasso2d", "select2d", "toImage"],
};

/** Fetch series of `runs` × `keys`, in as many requests (sent together) as the limit needs. */
export async function fetchSeries(runs, keys, { points, stepMin = null, stepMax = null }) {
  const runChunk = Math.min(runs.length, MAX_SERIES);
  const keyChunk = Math.max(1, Math.floor(MAX_SERIES / runChunk));
  const requests = [];
  for (let r = 0; r < runs.length; r += runChunk) {
    for (let k = 0; k < keys.length; k += keyChunk) {
      const query = {
        run: runs.slice(r, r + runChunk),
        key: keys.slice(k, k + keyChunk),
        points: Math.max(4, Math.round(points)),
        step_min: stepMin,
        step_max: stepMax,
      };
      requests.push(api("/api/series", { query }).then((answer) => answer.series));
    }
  }
  return (await Promise.all(requests)).flat();
}

/** Unit for relative wall time, chosen from the longest span shown. */
export function timeUnit(seconds) {
  if (seconds > 2 * 3600) return { label: "hours", scale: 3600 };
  if (seconds > 120) return { label: "minutes", scale: 60 };
  return { label: "seconds", scale: 1 };
}

const finiteOrNull = (value) => {
  const x = toNumber(value);
  return x === null || !Number.isFinite(x) ? null : x;
};

/** The x values of a series for an axis mode: "step", "epoch" or "time" (since `t0`). */
export function xValues(series, mode, t0 = 0, unit = { scale: 1 }) {
  if (mode === "epoch") return series.epochs.map(finiteOrNull);
  if (mode === "time") return series.times.map((t) => (toNumber(t) - t0) / unit.scale);
  return series.steps;
}

/** Plotly's y values: NaN and infinities become gaps. */
export const yValues = (series) => series.values.map(finiteOrNull);

const AXIS_TITLES = { step: "step", epoch: "epoch" };

/** The Plotly layout of a line chart. */
export function lineLayout({ xMode, logY, unit, legend = true }) {
  return {
    margin: { l: 52, r: 12, t: 8, b: 40 },
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 11, color: "#424a57" },
    paper_bgcolor: "#fff",
    plot_bgcolor: "#fff",
    hovermode: "x unified",
    hoverlabel: { namelength: -1 },
    showlegend: legend,
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 } },
    xaxis: {
      title: { text: xMode === "time" ? `time (${unit.label})` : AXIS_TITLES[xMode], standoff: 6 },
      gridcolor: "#eef0f3",
      zeroline: false,
      automargin: true,
    },
    yaxis: {
      type: logY ? "log" : "linear",
      gridcolor: "#eef0f3",
      zeroline: false,
      automargin: true,
      exponentformat: "power",
    },
    // User zoom survives redraws with new data until the axis mode or scale changes.
    uirevision: `${xMode}/${logY}`,
  };
}

/** Layout changes of a chart on an epoch axis whose series have no epochs: a note, no axes. */
function noEpochsLayout() {
  const hidden = { visible: false, showgrid: false, zeroline: false };
  return {
    showlegend: false,
    xaxis: hidden,
    yaxis: hidden,
    annotations: [
      {
        text: NO_EPOCHS,
        xref: "paper",
        yref: "paper",
        x: 0.5,
        y: 0.5,
        showarrow: false,
        font: { size: 13, color: "#6b7280" },
      },
    ],
  };
}

/**
 * A chart of the series `keys` of `runs` (refs), one trace per (run, key).
 *   name(series), color(series) -> the trace's legend entry and colour
 *   startOf(run number) -> the run's start (for relative time)
 */
export class LineChart {
  constructor(element, { runs, keys, name, color, startOf, points, legend = true }) {
    Object.assign(this, { element, runs, keys, name, color, startOf, legend });
    this.points = points ?? (() => Math.max(200, Math.round(element.clientWidth * 2)));
    this.options = { xMode: "step", logY: false };
    this.series = []; // what is drawn
    this.overview = []; // the whole step range, coarse: maps x positions back to steps
    this.stepRange = null; // [min, max] while zoomed
    this.seq = 0;
    this.bound = false;
  }

  /** Fetch (the zoomed range, or everything) and draw. */
  async load() {
    const seq = ++this.seq;
    const [stepMin, stepMax] = this.stepRange ?? [null, null];
    const series = await fetchSeries(this.runs, this.keys, { points: this.points(), stepMin, stepMax });
    if (seq !== this.seq) return; // a newer request is under way
    this.setSeries(series, { zoomed: Boolean(this.stepRange) });
  }

  /** Draw series fetched elsewhere (`zoomed`: they cover only the zoomed range). */
  setSeries(series, { zoomed = false } = {}) {
    this.series = series;
    if (!zoomed) this.overview = series;
    this.draw();
  }

  setOptions(options) {
    Object.assign(this.options, options);
    this.stepRange = null; // the axes start over: show everything
    this.seq += 1;
    this.series = this.overview;
    this.draw();
  }

  /** The series drawn: on an epoch axis, those that have epochs. */
  shown() {
    if (this.options.xMode !== "epoch") return this.series;
    return this.series.filter((s) => s.epochs.some((e) => finiteOrNull(e) !== null));
  }

  traces() {
    const unit = this.unit();
    const step = this.options.xMode === "step" ? "" : " (step %{customdata})";
    return this.shown().map((s) => ({
      type: "scatter",
      mode: s.steps.length === 1 ? "markers" : "lines",
      name: plotText(this.name(s)),
      x: xValues(s, this.options.xMode, this.startOf(s.run), unit),
      y: yValues(s),
      customdata: s.steps,
      line: { color: this.color(s), width: 1.6 },
      marker: { color: this.color(s), size: 5 },
      hovertemplate: `%{y:.4~g}${step}<extra></extra>`,
      meta: { run: s.run, key: s.key, total: s.total, reduced: s.reduced },
    }));
  }

  unit() {
    let span = 0;
    for (const s of this.overview) {
      if (s.times.length) span = Math.max(span, toNumber(s.times[s.times.length - 1]) - this.startOf(s.run));
    }
    return timeUnit(span);
  }

  draw() {
    const layout = lineLayout({ ...this.options, unit: this.unit(), legend: this.legend });
    const traces = this.traces();
    if (!traces.length && this.series.length && this.options.xMode === "epoch") {
      Object.assign(layout, noEpochsLayout()); // say so, rather than draw empty axes
    }
    Plotly.react(this.element, traces, layout, PLOT_CONFIG);
    if (!this.bound) {
      this.bound = true;
      this.element.on("plotly_relayout", (event) => this.onRelayout(event));
    }
  }

  /** Zoom: fetch the visible steps at full resolution; autorange: fetch everything again. */
  onRelayout(event) {
    if (event["xaxis.autorange"]) {
      if (!this.stepRange) return;
      this.stepRange = null;
      this.load().catch(reportChartError);
      return;
    }
    const range = event["xaxis.range"] ?? [event["xaxis.range[0]"], event["xaxis.range[1]"]];
    if (range[0] === undefined || range[1] === undefined) return;
    if (!this.overview.some((s) => s.reduced)) return; // every point is already drawn
    const steps = this.stepsWithin(Number(range[0]), Number(range[1]));
    if (!steps) return;
    this.stepRange = steps;
    this.load().catch(reportChartError);
  }

  /** The step range covering x positions [x0, x1], from the last point before x0 to the first
   * point after x1 (x grows with the step, for epochs and wall time too). */
  stepsWithin(x0, x1) {
    if (this.options.xMode === "step") return [Math.floor(x0), Math.ceil(x1)];
    const unit = this.unit();
    let low = Infinity;
    let high = -Infinity;
    for (const s of this.overview) {
      const xs = xValues(s, this.options.xMode, this.startOf(s.run), unit);
      if (!xs.some((x) => x !== null)) continue;
      let before = 0;
      let after = xs.length - 1;
      for (let i = 0; i < xs.length; i++) {
        if (xs[i] === null) continue;
        if (xs[i] < x0) before = i;
        else if (xs[i] > x1) {
          after = i;
          break;
        }
      }
      low = Math.min(low, s.steps[before]);
      high = Math.max(high, s.steps[after]);
    }
    return Number.isFinite(low) && Number.isFinite(high) ? [low, high] : null;
  }
}

function reportChartError(error) {
  console.warn("could not fetch the zoomed range:", error);
}
