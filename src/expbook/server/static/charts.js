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

/**
 * Distinct colours for runs or keys: 24, told apart up to 20+ series. Four of Tableau 10, then
 * each next colour the one farthest (CIE L*a*b* distance) from those chosen, among the sRGB
 * colours whose contrast is at least 2.2:1 on white and 3:1 on a dark page (#111827), so every
 * line reads in light and dark mode. Any two differ by ΔE*76 ≥ 30.
 */
export const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#9900ff", "#ff22bb", "#3366ee", "#ff0000",
  "#bb9977", "#dd88cc", "#00bbbb", "#00bb00", "#aaaa00", "#cc66ff", "#995566", "#886600",
  "#ff0077", "#557766", "#ff00ff", "#0099ff", "#7755aa", "#bb3377", "#bb3300", "#00bbee",
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

/** A number for Plotly, or null (a gap) for missing, NaN and infinities. */
export const finite = (value) => {
  const x = toNumber(value);
  return x === null || !Number.isFinite(x) ? null : x;
};

/** The splits a metric key may start with (`valid/loss`, `train_acc`), as the server knows them. */
export const SPLITS = ["train", "training", "valid", "validation", "val", "eval", "test", "dev"];

/** [split, metric] of a key: "valid/loss" -> ["valid", "loss"] (as the server groups them). */
export function splitKey(key) {
  for (const separator of ["/", "_"]) {
    const at = key.indexOf(separator);
    if (at > 0 && at < key.length - 1 && SPLITS.includes(key.slice(0, at).toLowerCase())) {
      return [key.slice(0, at), key.slice(at + 1)];
    }
  }
  return [null, key];
}

/** A confidence level as text: 0.95 -> "95 %", 0.9 -> "90 %", 0.995 -> "99.5 %". */
export const levelText = (confidence = 0.95) => `${Number((Number(confidence) * 100).toPrecision(4))} %`;

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** Unix seconds as Plotly's date text, in the browser's time zone, to the millisecond. */
export function wallText(seconds) {
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(
    d.getMinutes(),
  )}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** The metric an x axis mode names ("metric:valid/acc" -> "valid/acc"), else null. */
export const xMetric = (mode) => (mode.startsWith("metric:") ? mode.slice(7) : null);

/**
 * The x values of a series for an axis mode: "step", "epoch", "time" (since `t0`, in `unit`),
 * "wall" (dates) or "metric:KEY" (`pairs`: step -> that metric's value at the same step).
 */
export function xValues(series, mode, t0 = 0, unit = { scale: 1 }, pairs = null) {
  if (mode === "epoch") return series.epochs.map(finite);
  if (mode === "time") return series.times.map((t) => (toNumber(t) - t0) / unit.scale);
  if (mode === "wall") return series.times.map((t) => wallText(toNumber(t)));
  if (xMetric(mode)) return series.steps.map((step) => finite(pairs?.get(step)));
  return series.steps;
}

/** Plotly's y values: NaN and infinities become gaps. */
export const yValues = (series) => series.values.map(finite);

/**
 * An exponential moving average debiased as TensorBoard's: the running average starts at 0 and
 * is divided by 1 - weight^n after n values, so the first points are not pulled towards 0.
 * Gaps (null) stay gaps and do not count. weight 0 returns the values.
 */
export function smooth(values, weight) {
  if (!(weight > 0)) return values.slice();
  const out = new Array(values.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const y = values[i];
    if (y === null || !Number.isFinite(y)) {
      out[i] = y;
      continue;
    }
    last = last * weight + (1 - weight) * y;
    n += 1;
    out[i] = last / (1 - weight ** n);
  }
  return out;
}

/** The page's colours, read from the stylesheet's variables now (they change with the theme). */
export function themeColors() {
  const style = getComputedStyle(document.documentElement);
  const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    paper: read("--surface", "#fff"),
    grid: read("--border", "#e2e5ea"),
    text: read("--text", "#1d2330"),
    muted: read("--muted", "#6b7380"),
  };
}

const X_TITLES = { step: "step", epoch: "epoch", wall: "time" };

const X_CHOICES = [
  ["step", "step"],
  ["epoch", "epoch"],
  ["time", "relative time"],
  ["wall", "wall time"],
];

/** The Plotly layout of a line chart. */
export function lineLayout({ xMode, logY, logX = false, unit, legend = true }) {
  const colors = themeColors();
  const metric = xMetric(xMode);
  const title = metric ?? (xMode === "time" ? `time (${unit.label})` : X_TITLES[xMode]);
  const xType = xMode === "wall" ? "date" : logX ? "log" : "linear";
  return {
    margin: { l: 52, r: 12, t: 8, b: 40 },
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 11, color: colors.text },
    paper_bgcolor: colors.paper,
    plot_bgcolor: colors.paper,
    hovermode: "x unified",
    hoverlabel: { namelength: -1, bgcolor: colors.paper, bordercolor: colors.grid, font: { color: colors.text } },
    showlegend: legend,
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 } },
    xaxis: {
      title: { text: plotText(title), standoff: 6 },
      type: xType,
      gridcolor: colors.grid,
      linecolor: colors.grid,
      zeroline: false,
      automargin: true,
      exponentformat: "power",
    },
    yaxis: {
      type: logY ? "log" : "linear",
      gridcolor: colors.grid,
      linecolor: colors.grid,
      zeroline: false,
      automargin: true,
      exponentformat: "power",
    },
    // User zoom survives redraws with new data until the axis mode or scale changes.
    uirevision: `${xMode}/${logY}/${xType}`,
  };
}

/** Layout changes of a chart that has nothing to draw on its axes: a note instead. */
function noteLayout(text) {
  const hidden = { visible: false, showgrid: false, zeroline: false };
  return {
    showlegend: false,
    xaxis: hidden,
    yaxis: hidden,
    annotations: [
      {
        text: plotText(text),
        xref: "paper",
        yref: "paper",
        x: 0.5,
        y: 0.5,
        showarrow: false,
        font: { size: 13, color: themeColors().muted },
      },
    ],
  };
}

/** A note in a chart's corner (points left out on a log x axis). */
const cornerNote = (text) => ({
  text: plotText(text),
  xref: "paper",
  yref: "paper",
  x: 1,
  y: 1,
  xanchor: "right",
  yanchor: "top",
  showarrow: false,
  font: { size: 10, color: themeColors().muted },
});

// --- the page's charts together: smoothing, x axis, shared legend -----------------------------

const storageKey = (name) => {
  const parts = window.location.pathname.split("/").filter(Boolean);
  return `expbook.${name}:${parts[0] ?? ""}${parts.length > 1 ? "/*" : ""}`;
};

function readSetting(name, fallback) {
  try {
    const text = window.localStorage.getItem(storageKey(name));
    return text === null ? fallback : JSON.parse(text);
  } catch {
    return fallback;
  }
}

function writeSetting(name, value) {
  try {
    window.localStorage.setItem(storageKey(name), JSON.stringify(value));
  } catch {
    // private browsing: the setting lasts as long as the page
  }
}

/** The x axis the page address asks for (`?x=epoch`), else the step. */
function xFromAddress() {
  const mode = new URLSearchParams(window.location.search).get("x") || "step";
  return ["step", "epoch", "time", "wall"].includes(mode) || xMetric(mode) ? mode : "step";
}

/** Clamp a smoothing weight to [0, 0.99]. */
const clampWeight = (w) => Math.min(0.99, Math.max(0, Number(w) || 0));

/**
 * The page's charts as one: the smoothing weight (kept per page in localStorage), the x axis
 * for all charts, the series hidden from the shared legend, and that legend.
 */
class ChartBoard {
  constructor() {
    this.charts = new Set();
    this.smoothing = clampWeight(readSetting("smoothing", 0));
    this.xMode = xFromAddress();
    this.hidden = new Set(); // legend ids
    this.entries = new Map(); // legend id -> { label, color }
    this.legendElement = null;
    this.legendDue = false;
    document.addEventListener("themechange", () => this.redraw());
  }

  add(chart) {
    this.charts.add(chart);
  }

  remove(chart) {
    this.charts.delete(chart);
  }

  /** The charts still on the page (a page that draws its charts again drops the old ones). */
  live() {
    for (const chart of this.charts) if (!chart.element.isConnected) this.charts.delete(chart);
    return [...this.charts];
  }

  /** Charts that have drawn something (those of closed panels are not drawn yet). */
  drawn() {
    return this.live().filter((chart) => chart.element._fullLayout);
  }

  redraw() {
    for (const chart of this.drawn()) chart.draw();
  }

  setSmoothing(weight) {
    this.smoothing = clampWeight(weight);
    writeSetting("smoothing", this.smoothing);
    this.redraw();
  }

  /** The x axis of every chart; kept in the page address (`?x=wall`, `?x=metric:lr`). */
  setXMode(mode) {
    this.xMode = mode;
    const url = new URL(window.location.href);
    if (mode === "step") url.searchParams.delete("x");
    else url.searchParams.set("x", mode);
    history.replaceState(history.state, "", url);
    for (const chart of this.live()) chart.setOptions({ xMode: mode });
  }

  /** Note a legend entry (a chart draws a series of it); the legend is redrawn once after. */
  note(id, label, color) {
    if (!this.entries.has(id)) this.entries.set(id, { label, color });
    if (this.legendElement && !this.legendDue) {
      this.legendDue = true;
      queueMicrotask(() => {
        this.legendDue = false;
        this.drawLegend();
      });
    }
  }

  toggle(id) {
    if (this.hidden.has(id)) this.hidden.delete(id);
    else this.hidden.add(id);
    this.drawLegend();
    this.redraw();
  }

  /** Draw the legend: the entries of the series the page's charts show now (call it after
   * replacing a page's LineCharts by other drawings). */
  drawLegend() {
    const element = this.legendElement;
    if (!element) return;
    const used = new Set(this.live().flatMap((chart) => [...(chart.legendIds ?? [])]));
    const shown = [...this.entries].filter(([id]) => used.has(id));
    element.replaceChildren(
      ...shown.map(([id, entry]) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "legend-entry";
        button.dataset.id = id;
        button.setAttribute("aria-pressed", String(!this.hidden.has(id)));
        button.title = this.hidden.has(id) ? "Show on every chart" : "Hide on every chart";
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = entry.color;
        button.append(swatch, document.createTextNode(entry.label)); // text: names stay text
        return button;
      }),
    );
    element.hidden = !shown.length;
  }
}

/** The page's board (a page is one document: one board). */
export const board = new ChartBoard();

/**
 * Draw the page's chart toolbar into `element`: the x axis (step, epoch, relative time, wall
 * time, or any of `keys`, paired by step), the smoothing slider and the shared legend.
 * Returns an object whose `setKeys(keys)` updates the metrics offered as x.
 */
export function mountChartToolbar(element, { keys = [] } = {}) {
  element.classList.add("chart-toolbar");
  element.innerHTML = `
    <label>x axis <select id="x-mode" class="x-mode"></select></label>
    <label class="smoothing-label" title="Exponential moving average, debiased (as TensorBoard's); the raw line stays faint behind">smoothing
      <input type="range" id="smoothing" class="smoothing" min="0" max="0.99" step="0.01">
      <output class="smoothing-value"></output></label>
    <div class="chart-legend" role="group" aria-label="Series: click to hide or show on every chart" hidden></div>`;
  const select = element.querySelector(".x-mode");
  const slider = element.querySelector(".smoothing");
  const output = element.querySelector(".smoothing-value");
  const setKeys = (list) => {
    const options = X_CHOICES.map(([value, label]) => new Option(label, value));
    if (list.length) {
      const group = document.createElement("optgroup");
      group.label = "metric (paired by step)";
      for (const key of list) group.append(new Option(key, `metric:${key}`));
      options.push(group);
    }
    select.replaceChildren(...options);
    select.value = board.xMode;
    if (select.value !== board.xMode) {
      select.value = "step"; // an address naming a metric these runs do not have
      board.xMode = "step";
    }
  };
  setKeys(keys);
  const showWeight = () => {
    output.textContent = board.smoothing ? board.smoothing.toFixed(2) : "off";
  };
  slider.value = String(board.smoothing);
  showWeight();
  select.addEventListener("change", () => board.setXMode(select.value));
  let frame = 0;
  slider.addEventListener("input", () => {
    board.smoothing = clampWeight(slider.value);
    showWeight();
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => board.setSmoothing(slider.value));
  });
  board.legendElement = element.querySelector(".chart-legend");
  board.legendElement.addEventListener("click", (event) => {
    const entry = event.target.closest(".legend-entry");
    if (entry) board.toggle(entry.dataset.id);
  });
  board.drawLegend();
  return { setKeys };
}

/**
 * A chart of the series `keys` of `runs` (refs), one trace per (run, key).
 *   name(series), color(series) -> the series' legend label and colour
 *   legendOf(series) -> its shared legend entry's label (default: name), null for none
 *   startOf(run number) -> the run's start (for relative time)
 *   tools: where the chart's log x / log y toggles go (default: the <h3> just before the chart,
 *          else a line before it); false for none
 */
export class LineChart {
  constructor(element, { runs, keys, name, color, startOf, points, legend = true, legendOf, tools }) {
    Object.assign(this, { element, runs, keys, name, color, startOf, legend });
    this.legendOf = legendOf ?? name;
    this.points = points ?? (() => Math.max(200, Math.round(element.clientWidth * 2)));
    this._options = { xMode: board.xMode, logY: false, logX: false };
    this.series = []; // what is drawn
    this.overview = []; // the whole step range, coarse: maps x positions back to steps
    this.stepRange = null; // [min, max] while zoomed
    this.pairs = null; // { key, byRun: Map(run -> Map(step -> value)) } for an x metric
    this.seq = 0;
    this.bound = false;
    board.add(this);
    if (tools !== false) this.addTools(tools);
  }

  /** The chart's options: { xMode, logY, logX }. The x axis is the page's (a page that sets
   * the options whole keeps it). */
  get options() {
    return this._options;
  }

  set options(options) {
    this._options = { logY: false, logX: false, ...options, xMode: board.xMode };
  }

  /** The log x / log y toggles. */
  addTools(target) {
    const before = this.element.previousElementSibling;
    const box = document.createElement("span");
    box.className = "chart-tools";
    for (const axis of ["x", "y"]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "chart-tool";
      button.dataset.axis = axis;
      button.textContent = `log ${axis}`;
      button.title = `Logarithmic ${axis} axis for this chart`;
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", () => {
        const option = axis === "x" ? "logX" : "logY";
        this.setOptions({ [option]: !this.options[option] });
      });
      box.append(button);
    }
    this.toolBox = box;
    if (target) target.append(box);
    else if (before?.tagName === "H3") before.append(box);
    else this.element.before(box);
  }

  syncTools() {
    if (!this.toolBox) return;
    for (const button of this.toolBox.querySelectorAll(".chart-tool")) {
      const on = Boolean(button.dataset.axis === "x" ? this.options.logX : this.options.logY);
      button.setAttribute("aria-pressed", String(on));
      button.disabled = button.dataset.axis === "x" && this.options.xMode === "wall"; // a date axis
    }
  }

  /** Fetch (the zoomed range, or everything) and draw. */
  async load() {
    const seq = ++this.seq;
    const [stepMin, stepMax] = this.stepRange ?? [null, null];
    const [series] = await Promise.all([
      fetchSeries(this.runs, this.keys, { points: this.points(), stepMin, stepMax }),
      this.fetchPairs(),
    ]);
    if (seq !== this.seq) return; // a newer request is under way
    this.setSeries(series, { zoomed: Boolean(this.stepRange) });
  }

  /** For an x metric: that metric's every value by step, per run (fetched once per key). */
  async fetchPairs() {
    const key = xMetric(this.options.xMode);
    if (!key || this.pairs?.key === key) return;
    const series = await fetchSeries(this.runs, [key], { points: 1_000_000 });
    const byRun = new Map();
    for (const s of series) {
      const map = new Map();
      s.steps.forEach((step, i) => map.set(step, s.values[i]));
      byRun.set(String(s.run), map);
    }
    this.pairs = { key, byRun };
  }

  /** Draw series fetched elsewhere (`zoomed`: they cover only the zoomed range). */
  setSeries(series, { zoomed = false } = {}) {
    this.series = series;
    if (!zoomed) this.overview = series;
    this.draw();
  }

  setOptions(options) {
    const axisChanged = options.xMode !== undefined && options.xMode !== this.options.xMode;
    Object.assign(this.options, options);
    if (axisChanged || this.stepRange) {
      this.stepRange = null; // the axes start over: show everything
      this.seq += 1;
      this.series = this.overview;
    }
    if (xMetric(this.options.xMode) && this.pairs?.key !== xMetric(this.options.xMode)) {
      const seq = ++this.seq;
      this.fetchPairs()
        .then(() => seq === this.seq && this.draw())
        .catch(reportChartError);
      return;
    }
    this.draw();
  }

  /** The series drawn: on an epoch axis, those that have epochs. */
  shown() {
    if (this.options.xMode !== "epoch") return this.series;
    return this.series.filter((s) => s.epochs.some((e) => finite(e) !== null));
  }

  /** What a tooltip calls a series: run number, run name and key. */
  label(s) {
    return `#${s.run} ${s.name} · ${s.key}`;
  }

  /** The points of a series as drawn: [x, y, step] arrays, less those the x axis cannot show. */
  points3(s, unit) {
    const { xMode, logX } = this.options;
    const pairs = this.pairs?.byRun.get(String(s.run));
    const x = xValues(s, xMode, this.startOf(s.run), unit, pairs);
    let y = yValues(s);
    let steps = s.steps;
    let left = 0;
    const keep = [];
    const metric = xMetric(xMode);
    const logged = logX && xMode !== "wall";
    if (metric || logged) {
      for (let i = 0; i < x.length; i++) {
        if (metric && x[i] === null) continue; // no value of the x metric at that step
        if (logged && !(x[i] > 0)) {
          left += 1; // a log axis has no place for x <= 0 (step 0)
          continue;
        }
        keep.push(i);
      }
      if (keep.length !== x.length) {
        y = keep.map((i) => y[i]);
        steps = keep.map((i) => steps[i]);
        return { x: keep.map((i) => x[i]), y, steps, left };
      }
    }
    return { x, y, steps, left };
  }

  traces() {
    const unit = this.unit();
    const step = this.options.xMode === "step" ? "" : " (step %{customdata})";
    const weight = board.smoothing;
    const traces = [];
    this.leftOut = 0;
    const before = this.legendIds;
    this.legendIds = new Set();
    const colors = new Map(); // legend id -> colour
    for (const s of this.shown()) {
      const { x, y, steps, left } = this.points3(s, unit);
      this.leftOut += left;
      const color = this.color(s);
      const legendLabel = this.legendOf(s);
      const legendId = legendLabel === null || legendLabel === undefined ? null : String(legendLabel);
      if (legendId !== null && !this.legendIds.has(legendId)) {
        this.legendIds.add(legendId);
        colors.set(legendId, color);
      }
      const visible = legendId === null || !board.hidden.has(legendId);
      const meta = { run: s.run, key: s.key, total: s.total, reduced: s.reduced, legend: legendId };
      const single = x.length === 1;
      const base = {
        type: "scatter",
        mode: single ? "markers" : "lines",
        name: plotText(this.label(s)),
        x,
        customdata: steps,
        visible,
        marker: { color, size: 5 },
        showlegend: this.legend,
        legendgroup: `${s.run}/${s.key}`,
      };
      if (weight > 0 && !single) {
        traces.push({
          ...base,
          y,
          line: { color, width: 1.2 },
          opacity: 0.3,
          hoverinfo: "skip",
          showlegend: false,
          meta: { ...meta, raw: true },
        });
        traces.push({
          ...base,
          y: smooth(y, weight),
          line: { color, width: 1.8 },
          hovertemplate: `%{fullData.name}: %{y:.4~g}${step}<extra></extra>`,
          meta: { ...meta, smoothed: weight },
        });
      } else {
        traces.push({
          ...base,
          y,
          line: { color, width: 1.6 },
          hovertemplate: `%{fullData.name}: %{y:.4~g}${step}<extra></extra>`,
          meta,
        });
      }
    }
    const ids = [...this.legendIds];
    if (!before || before.size !== ids.length || ids.some((id) => !before.has(id))) {
      for (const id of ids) board.note(id, id, colors.get(id)); // the legend shows what is drawn
    }
    return traces;
  }

  unit() {
    let span = 0;
    for (const s of this.overview) {
      if (s.times.length) span = Math.max(span, toNumber(s.times[s.times.length - 1]) - this.startOf(s.run));
    }
    return timeUnit(span);
  }

  /** Draw now, or (hidden: a closed panel, a card a search hides) when shown: see `stale`. */
  draw() {
    if (!this.element.offsetParent) {
      this.stale = true; // Plotly cannot size a hidden chart: the page calls draw() when shown
      return;
    }
    this.stale = false;
    const legend = this.legend && !board.legendElement; // the page's legend, when it has one
    const layout = lineLayout({ ...this.options, unit: this.unit(), legend });
    const traces = this.traces();
    const metric = xMetric(this.options.xMode);
    if (!traces.length && this.series.length && this.options.xMode === "epoch") {
      Object.assign(layout, noteLayout(NO_EPOCHS)); // say so, rather than draw empty axes
    } else if (metric && this.series.length && this.pairs?.key === metric && !traces.some((t) => t.x.length)) {
      Object.assign(layout, noteLayout(`No values of ${metric} at the steps of these series`));
    } else if (this.leftOut) {
      const what = this.options.xMode === "step" ? "step" : "x";
      layout.annotations = [cornerNote(`${this.leftOut} point${this.leftOut === 1 ? "" : "s"} at ${what} ≤ 0 not shown (log x)`)];
    }
    Plotly.react(this.element, traces, layout, PLOT_CONFIG);
    this.syncTools();
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
    const steps = this.stepsWithin(this.axisValue(range[0]), this.axisValue(range[1]));
    if (!steps) return;
    this.stepRange = steps;
    this.load().catch(reportChartError);
  }

  /** An x axis range end as an x value: log axes give log10(x), date axes give text. */
  axisValue(end) {
    if (this.options.xMode === "wall") return new Date(String(end).replace(" ", "T")).getTime() / 1000;
    return this.options.logX ? 10 ** Number(end) : Number(end);
  }

  /** The step range covering x positions [x0, x1], from the last point before x0 to the first
   * point after x1 (x grows with the step, for epochs and wall time too; not for a metric). */
  stepsWithin(x0, x1) {
    const mode = this.options.xMode;
    if (xMetric(mode)) return null;
    if (mode === "step") return [Math.floor(x0), Math.ceil(x1)];
    const unit = this.unit();
    let low = Infinity;
    let high = -Infinity;
    for (const s of this.overview) {
      const xs = mode === "wall" ? s.times.map(finite) : xValues(s, mode, this.startOf(s.run), unit);
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
  console.warn("could not fetch the chart's data:", error);
}
