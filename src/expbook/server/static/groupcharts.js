// Groups of runs on charts and in tables: pure functions that turn what the API computed
// (GET /api/compare: each group's n, mean, std, CI and Welch comparison; GET /api/compare/series:
// each group's mean curve with its t-based CI and min-max band per step) into Plotly traces,
// labels and colours. No statistics are computed here: means, bands and p-values come from the
// server (expbook.report.stats), the browser only draws them.

import { fmtNumber, fmtParam, toNumber } from "./common.js";
import { colorAt, finite, levelText, plotText } from "./charts.js";

export { finite, levelText };

/** `#4e79a7` (or `rgb(...)`) with an alpha: the fill of a band in its line's colour. */
export function withAlpha(color, alpha) {
  const text = String(color).trim();
  const hex = /^#([0-9a-f]{6})$/i.exec(text);
  if (hex) {
    const n = Number.parseInt(hex[1], 16);
    return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
  }
  const rgb = /^rgba?\(([^,]+),([^,]+),([^,)]+)/i.exec(text);
  if (rgb) return `rgba(${rgb[1].trim()}, ${rgb[2].trim()}, ${rgb[3].trim()}, ${alpha})`;
  return text;
}

/** A group's legend entry: `model.hidden=128 (n=3)`; a group of one run says its noise is
 * unknown. */
export function groupName(group) {
  return group.n < 2 ? `${group.label} (n=1, noise unknown)` : `${group.label} (n=${group.n})`;
}

/** The band choices, with the CI's level as the API answered it (0.95 -> "95 % CI"). */
export const bandsFor = (confidence = 0.95) => ({ ci: `${levelText(confidence)} CI`, minmax: "min–max" });

/**
 * Plotly traces for the group curves of one chart: per series of GET /api/compare/series (one
 * group, one key), a band (a closed polygon over the steps where it has both bounds) and the
 * mean line on top, sharing a legend entry.
 *   groups: the API's groups ({label, n, runs}); band: "ci" | "minmax"; color(groupIndex)
 */
export function groupTraces(series, groups, { band = "ci", color = colorAt, confidence = 0.95 } = {}) {
  const bands = [];
  const lines = [];
  const level = `${levelText(confidence)} CI`;
  for (const s of series) {
    const group = groups[s.group];
    const colour = color(s.group);
    const legendgroup = `group-${s.group}`;
    const [lows, highs] = band === "minmax" ? [s.min, s.max] : [s.low, s.high];
    const at = s.steps.map((_, i) => i).filter((i) => s.n[i] >= 2 && finite(lows[i]) !== null && finite(highs[i]) !== null);
    if (at.length) {
      const x = at.map((i) => s.steps[i]);
      bands.push({
        type: "scatter",
        mode: "lines",
        x: [...x, ...[...x].reverse()],
        y: [...at.map((i) => finite(highs[i])), ...[...at].reverse().map((i) => finite(lows[i]))],
        fill: "toself",
        fillcolor: withAlpha(colour, 0.18),
        line: { width: 0, color: colour },
        hoverinfo: "skip",
        showlegend: false,
        legendgroup,
        name: plotText(`${group.label} ${band === "minmax" ? "min–max" : level}`),
        meta: { group: s.group, key: s.key, band, role: "band", steps: x.length },
      });
    }
    const bandText = (i) => {
      if (s.n[i] < 2 || finite(lows[i]) === null) return "noise unknown";
      return `${band === "minmax" ? "min–max" : level} [${fmtNumber(finite(lows[i]))}, ${fmtNumber(finite(highs[i]))}]`;
    };
    const unknown = group.n < 2;
    lines.push({
      type: "scatter",
      mode: s.steps.length === 1 ? "markers" : "lines",
      name: plotText(groupName(group)),
      x: s.steps,
      y: s.mean.map(finite),
      customdata: s.steps.map((_, i) => [s.n[i], bandText(i)]),
      line: { color: colour, width: 2, dash: unknown ? "dot" : "solid" },
      marker: { color: colour, size: 5 },
      legendgroup,
      hovertemplate: `%{y:.4~g} (n=%{customdata[0]}, %{customdata[1]})<extra>${plotText(group.label)}</extra>`,
      meta: { group: s.group, key: s.key, role: "mean", n: group.n, noiseUnknown: unknown },
    });
  }
  return [...bands, ...lines]; // bands under every line
}

// --- colour by a param ------------------------------------------------------------------------

/** Plotly's Viridis, up to a green-yellow that still reads on a light background. */
const SCALE = [
  [0, [68, 1, 84]],
  [0.25, [59, 82, 139]],
  [0.5, [33, 145, 140]],
  [0.75, [94, 201, 98]],
  [1, [189, 223, 38]],
];

/** The colour at `t` in [0, 1] on the scale. */
export function scaleColor(t) {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  for (let i = 1; i < SCALE.length; i++) {
    const [t1, c1] = SCALE[i];
    const [t0, c0] = SCALE[i - 1];
    if (x <= t1) {
      const f = (x - t0) / (t1 - t0);
      const channel = (k) => Math.round(c0[k] + f * (c1[k] - c0[k]));
      return `rgb(${channel(0)}, ${channel(1)}, ${channel(2)})`;
    }
  }
  return `rgb(${SCALE[SCALE.length - 1][1].join(", ")})`;
}

const spreadOf = (xs) => {
  const gaps = xs.slice(1).map((x, i) => x - xs[i]);
  return Math.max(...gaps) / Math.min(...gaps);
};

/** Whether values are spread over decades or spaced evenly on a log scale (1e-4, 3e-4, 1e-3,
 * 3e-3: a learning-rate sweep), where a linear scale would crowd all but the largest. */
export function logSpaced(values) {
  const distinct = [...new Set(values)].sort((a, b) => a - b);
  const [min, max] = [distinct[0], distinct[distinct.length - 1]];
  if (!(min > 0) || max / min < 10) return false;
  if (max / min >= 100 || distinct.length === 2) return true;
  return spreadOf(distinct.map(Math.log10)) < spreadOf(distinct);
}

/** A log colour scale for positive values spaced more evenly in log than linearly (64, 128,
 * 256, 512; 1e-4, 1e-3, 1e-2), so that each step of the sweep reads as one step of colour. */
function logColors(values) {
  const sorted = [...values].sort((a, b) => a - b);
  if (!(sorted[0] > 0)) return false;
  if (logSpaced(sorted)) return true;
  return sorted.length >= 3 && spreadOf(sorted.map(Math.log10)) < spreadOf(sorted);
}

const paramText = (value) => (value === undefined ? "\0missing" : JSON.stringify(value));

/**
 * Colours for the values of a param across runs: numbers on a colour scale (log when they
 * are log-spaced), anything else on the palette, one colour per distinct value; equal values
 * get equal colours. `missing` colours a run without the param.
 * -> {kind: "scale" | "palette", color(value), legend: [{text, color}]}
 */
export function paramColors(values, { missing = "#9ca3af" } = {}) {
  const present = values.filter((v) => v !== undefined && v !== null);
  const numeric = present.length > 0 && present.every((v) => typeof v === "number" && Number.isFinite(v));
  const distinct = [...new Map(present.map((v) => [paramText(v), v])).values()];
  if (numeric && distinct.length >= 2) {
    const log = logColors(distinct);
    const at = (v) => (log ? Math.log10(v) : v);
    const low = Math.min(...present.map(at));
    const high = Math.max(...present.map(at));
    const color = (v) =>
      typeof v === "number" && Number.isFinite(v) ? scaleColor(0.08 + (0.92 * (at(v) - low)) / (high - low)) : missing;
    const shown = [...distinct].sort((a, b) => a - b);
    return {
      kind: "scale",
      log,
      color,
      legend: shown.map((v) => ({ text: fmtParam(v), color: color(v) })),
    };
  }
  const ordered = [...distinct].sort((a, b) => {
    const [x, y] = [typeof a === "number", typeof b === "number"];
    if (x && y) return a - b;
    return x === y ? fmtParam(a).localeCompare(fmtParam(b)) : x ? -1 : 1;
  });
  const index = new Map(ordered.map((v, i) => [paramText(v), i]));
  const color = (v) => (v === undefined || v === null ? missing : colorAt(index.get(paramText(v)) ?? 0));
  return { kind: "palette", log: false, color, legend: ordered.map((v) => ({ text: fmtParam(v), color: color(v) })) };
}

// --- metrics table ----------------------------------------------------------------------------

/** A run's value of a metric from its summary, as the API's `value` reads it: last, min, max,
 * or best (min for an error like loss, else max); a metric without min/max has its last. */
export function summaryValue(summary, which, lowerIsBetter) {
  if (!summary) return null;
  const pick = which === "best" ? (lowerIsBetter ? "min" : "max") : which;
  const found = pick === "min" || pick === "max" ? summary[pick] : null;
  return toNumber(found ?? summary.value);
}

/** The index of the best finite value (lowest or highest; the first of equals), or -1 when
 * there is none or all are equal (nothing stands out). */
export function bestIndex(values, lowerIsBetter) {
  const known = values.filter((v) => v !== null && Number.isFinite(v));
  if (new Set(known).size < 2) return -1;
  let best = -1;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) return;
    if (best < 0 || (lowerIsBetter ? v < values[best] : v > values[best])) best = i;
  });
  return best;
}

/** `value - base` and it in percent of |base| (null when base is 0 or either is not finite). */
export function delta(value, base) {
  if (value === null || base === null || !Number.isFinite(value) || !Number.isFinite(base)) return null;
  const diff = value - base;
  return { diff, percent: base === 0 ? null : (100 * diff) / Math.abs(base) };
}

/** `+0.0123 (+1.4 %)` */
export function deltaText(found) {
  if (!found) return "—";
  const sign = (x) => (x > 0 ? "+" : x < 0 ? "−" : "±");
  const abs = `${sign(found.diff)}${fmtNumber(Math.abs(found.diff))}`;
  if (found.percent === null) return abs;
  return `${abs} (${sign(found.percent)}${Math.abs(found.percent).toFixed(1)} %)`;
}

/** Whether a change is an improvement for a metric (null: no change or unknown). */
export function improves(found, lowerIsBetter) {
  if (!found || found.diff === 0) return null;
  return lowerIsBetter ? found.diff < 0 : found.diff > 0;
}

/** `[0.807, 0.899]`, or — when unknown. */
export function intervalText(ci) {
  if (!ci) return "—";
  const [low, high] = ci.map(finite);
  return low === null || high === null ? "—" : `[${fmtNumber(low)}, ${fmtNumber(high)}]`;
}

/** A group's mean and std as texts ({mean: "0.853", std: "0.0184"}; std null when unknown, as
 * for n < 2), or null when the group has no value. */
export function meanParts(metric) {
  if (!metric || metric.n === 0) return null;
  const std = metric.std === null || metric.std === undefined || metric.n < 2 ? null : fmtNumber(toNumber(metric.std));
  return { mean: fmtNumber(toNumber(metric.mean)), std };
}

/** `0.853 ± 0.0184`, or the mean alone for n < 2. */
export function meanText(metric) {
  const parts = meanParts(metric);
  if (!parts) return "—";
  return parts.std === null ? parts.mean : `${parts.mean} ± ${parts.std}`;
}

/** A p-value as `expbook compare` prints it (3 significant digits), or —. */
export function pText(p) {
  const x = finite(p);
  return x === null ? "—" : String(Number(x.toPrecision(3)));
}
