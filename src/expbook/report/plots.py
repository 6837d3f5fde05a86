"""Draw the notebook's figures as PNG, the same bytes for the same data on every run.

matplotlib draws on an Agg canvas (no pyplot, no GUI backend, no global figure state), inside
``rc_context`` with matplotlib's own defaults plus :data:`RC`: a user's matplotlibrc changes
nothing, and the font is DejaVu Sans, which matplotlib ships. Sizes and dpi are fixed
(:func:`pixel_size`), and the PNG holds no "Software" or date metadata. matplotlib is imported
inside the functions.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

from expbook.report.figures import (
    CurvesFigure,
    Figure,
    HeatmapFigure,
    ParallelFigure,
    SweepFigure,
)
from expbook.report.text import fmt_number

DPI = 100
SIZES: dict[type, tuple[float, float]] = {
    CurvesFigure: (9.0, 4.5),
    HeatmapFigure: (8.0, 5.0),
    SweepFigure: (8.0, 4.5),
    ParallelFigure: (10.0, 5.0),
}
RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 11.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.hashsalt": "expbook-report",
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
}
SPLIT_STYLES = {"train": "--", "training": "--", "test": ":"}
"""Line style per split; validation and unsplit keys are solid."""
TITLE_WIDTH = 80
MARKED_POINTS = 30
"""Lines of at most this many points get a marker per point (a few epochs, or one point)."""


def pixel_size(figure: Figure) -> tuple[int, int]:
    """(width, height) of the figure's PNG in pixels."""
    width, height = SIZES[type(figure)]
    return round(width * DPI), round(height * DPI)


def render(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as Canvas

    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(RC)
        drawing = Canvas(figsize=SIZES[type(figure)], dpi=DPI, layout="constrained")
        FigureCanvasAgg(drawing)
        _DRAW[type(figure)](drawing, figure)
        buffer = io.BytesIO()
        drawing.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _title(text: str) -> str:
    return text if len(text) <= TITLE_WIDTH else text[: TITLE_WIDTH - 1] + "…"


def _label(metric: str, unit: str | None) -> str:
    return f"{metric} ({unit})" if unit else metric


def _finite(values: Sequence[float]) -> list[float]:
    return [v if math.isfinite(v) else math.nan for v in values]


def _colors(count: int) -> list[Any]:
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    return [colormaps["viridis"](i / (count - 1)) for i in range(count)]


def _cmap(minimise: bool) -> Any:
    """Brighter is better: viridis for a score, reversed for an error."""
    from matplotlib import colormaps

    return colormaps["viridis_r" if minimise else "viridis"]


# --- learning curves ----------------------------------------------------------------------------


def _draw_curves(drawing: Any, spec: CurvesFigure) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    axes = drawing.add_subplot()
    colors = _colors(len(spec.runs))
    for line in spec.lines:
        few = len(line.x) <= MARKED_POINTS
        axes.plot(line.x, _finite(line.y), color=colors[line.run], linewidth=1.4,
                  linestyle=SPLIT_STYLES.get((line.split or "").lower(), "-"),
                  marker="o" if few else None, markersize=3)  # fmt: skip
        _mark_non_finite(axes, line, colors[line.run])
    _maybe_log_y(axes, [v for line in spec.lines for v in line.y])
    if all(float(x).is_integer() for line in spec.lines for x in line.x):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(spec.x_label)
    axes.set_ylabel(_label(spec.metric, spec.unit))
    axes.set_title(_title(spec.title))
    runs = sorted({line.run for line in spec.lines})
    handles = [Line2D([], [], color=colors[i], label=spec.runs[i][:32]) for i in runs]
    keys = sorted({(line.key, line.split) for line in spec.lines})
    if len(keys) > 1:
        handles += [Line2D([], [], color="0.3", label=key,
                           linestyle=SPLIT_STYLES.get((split or "").lower(), "-"))
                    for key, split in keys]  # fmt: skip
    drawing.legend(handles=handles, loc="outside right upper", fontsize=8)


def _mark_non_finite(axes: Any, line: Any, color: Any) -> None:
    """An x at the top of the chart where a value is NaN or infinite (a diverged run)."""
    xs = [x for x, y in zip(line.x, line.y, strict=True) if not math.isfinite(y)]
    if xs:
        axes.plot(xs, [1.0] * len(xs), transform=axes.get_xaxis_transform(), marker="x",
                  markersize=8, color=color, linestyle="none", clip_on=False)  # fmt: skip


def _maybe_log_y(axes: Any, values: Sequence[float]) -> None:
    """A log scale when the positive values span more than two decades (a falling loss)."""
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 100:
        axes.set_yscale("log")


# --- heatmap ------------------------------------------------------------------------------------


def _draw_heatmap(drawing: Any, spec: HeatmapFigure) -> None:
    import numpy as np

    axes = drawing.add_subplot()
    axes.grid(False)
    data = np.array([[np.nan if v is None else v for v in row] for row in spec.means], float)
    finite = data[np.isfinite(data)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    cmap = _cmap(spec.minimise).with_extremes(bad="#e8e8e8")
    image = axes.imshow(np.ma.masked_invalid(data), cmap=cmap, aspect="auto", origin="lower",
                        vmin=low, vmax=high if high > low else low + 1e-12)  # fmt: skip
    for row, values in enumerate(data):
        for column, value in enumerate(values):
            _cell_text(axes, image, row, column, value, spec.counts[row][column])
    _outline_best(axes, data, spec.minimise)
    axes.set_xticks(range(len(spec.x_labels)), labels=spec.x_labels)
    axes.set_yticks(range(len(spec.y_labels)), labels=spec.y_labels)
    axes.set_xlabel(spec.x_param)
    axes.set_ylabel(spec.y_param)
    axes.set_title(_title(spec.title))
    drawing.colorbar(image, ax=axes, label=_label(spec.metric, spec.unit))


def _cell_text(axes: Any, image: Any, row: int, column: int, value: float, count: int) -> None:
    if count == 0:
        axes.text(column, row, "—", ha="center", va="center", color="0.4")
        return
    text = fmt_number(float(value)) + (f"\nn={count}" if count > 1 else "")
    red, green, blue, _ = image.cmap(image.norm(value)) if math.isfinite(value) else (1, 1, 1, 1)
    dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
    axes.text(column, row, text, ha="center", va="center", fontsize=10,
              color="white" if dark else "black")  # fmt: skip


def _outline_best(axes: Any, data: Any, minimise: bool) -> None:
    from matplotlib.patches import Rectangle

    cells = [(v if minimise else -v, row, column) for row, values in enumerate(data)
             for column, v in enumerate(values) if math.isfinite(v)]  # fmt: skip
    if cells:
        _, row, column = min(cells)
        axes.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, linewidth=3,
                                 edgecolor="#d62728", label="best"))  # fmt: skip


# --- one param ----------------------------------------------------------------------------------


def _draw_sweep(drawing: Any, spec: SweepFigure) -> None:
    axes = drawing.add_subplot()
    points = spec.points
    means = [p.mean for p in points]
    errors = [0.0 if math.isnan(p.std) else p.std for p in points]
    yerr = errors if any(errors) else None
    best = _best_index(means, spec.minimise)
    if spec.numeric:
        xs = [p.x for p in points]
        axes.errorbar(xs, _finite(means), yerr=yerr, marker="o", capsize=4, color="C0")
        if spec.log_x:
            axes.set_xscale("log")
        axes.set_xticks(xs, labels=[p.label for p in points])
        axes.minorticks_off()
    else:
        xs = list(range(len(points)))
        colors = ["C1" if i == best else "C0" for i in xs]
        bars = axes.bar(xs, _finite(means), yerr=yerr, capsize=4, color=colors, alpha=0.85)
        axes.bar_label(bars, labels=[fmt_number(m) for m in means], padding=3, fontsize=8)
        rotation = 30 if len(points) * max(len(p.label) for p in points) > 80 else 0
        axes.set_xticks(xs, labels=[p.label for p in points], rotation=rotation)
    _repeat_dots(axes, xs, points)
    if best is not None and spec.numeric:
        axes.plot([xs[best]], [means[best]], marker="*", markersize=14, color="C1",
                  linestyle="none", label="best", zorder=4)  # fmt: skip
        axes.legend(loc="best", fontsize=8)
    axes.set_xlabel(spec.param)
    axes.set_ylabel(_label(spec.metric, spec.unit))
    axes.set_title(_title(spec.title))


def _repeat_dots(axes: Any, xs: Sequence[Any], points: Sequence[Any]) -> None:
    for x, point in zip(xs, points, strict=True):
        if len(point.values) > 1:
            axes.scatter([x] * len(point.values), _finite(point.values), s=14, color="0.2",
                         alpha=0.6, zorder=3)  # fmt: skip


def _best_index(means: Sequence[float], minimise: bool) -> int | None:
    finite = [(m if minimise else -m, i) for i, m in enumerate(means) if math.isfinite(m)]
    return min(finite)[1] if finite else None


# --- parallel coordinates -----------------------------------------------------------------------


def _draw_parallel(drawing: Any, spec: ParallelFigure) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    axes = drawing.add_subplot()
    axes.grid(False)
    cmap = _cmap(spec.minimise)
    low, high = min(spec.values), max(spec.values)
    norm = Normalize(low, high if high > low else low + 1e-12)
    count = len(spec.axes)
    order = sorted(range(len(spec.values)), key=lambda i: _worst_first(spec.values[i], spec))
    for i in order:
        ys = [axis.positions[i] for axis in spec.axes]
        axes.plot(range(count), ys, color=cmap(norm(spec.values[i])), linewidth=1.5, alpha=0.9)
    for j, axis in enumerate(spec.axes):
        axes.axvline(j, color="0.25", linewidth=1.0)
        for position, label in axis.ticks:
            axes.text(j + 0.02, position, label, fontsize=7, ha="left", va="center",
                      bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                            "alpha": 0.7})  # fmt: skip
    axes.set_xticks(range(count), labels=[a.name for a in spec.axes],
                    rotation=20 if count > 5 else 0)  # fmt: skip
    axes.set_yticks([])
    axes.set_xlim(-0.15, count - 1 + 0.45)
    axes.set_ylim(-0.06, 1.06)
    for side in ("left", "right", "top"):
        axes.spines[side].set_visible(False)
    axes.set_title(_title(spec.title))
    drawing.colorbar(ScalarMappable(norm, cmap), ax=axes, label=_label(spec.metric, spec.unit))


def _worst_first(value: float, spec: ParallelFigure) -> float:
    """Draw order: the best run last, on top."""
    return -value if spec.minimise else value


_DRAW: dict[type, Callable[[Any, Any], None]] = {
    CurvesFigure: _draw_curves,
    HeatmapFigure: _draw_heatmap,
    SweepFigure: _draw_sweep,
    ParallelFigure: _draw_parallel,
}


# The sweep section's figures (report/sweeps.py, which imports this module only inside its drawing
# functions) are drawn by the same render().
from expbook.report import sweeps as _sweeps  # noqa: E402

SIZES.update(_sweeps.SIZES)
_DRAW.update(_sweeps.DRAW)
