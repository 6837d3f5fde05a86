"""Formatting for the CLI: numbers, times, durations, status badges and Rich consoles."""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import sys
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

STATUS_STYLES = {
    "running": "bold blue",
    "finished": "green",
    "failed": "bold red",
    "interrupted": "yellow",
    "crashed": "bold magenta",
    "pruned": "cyan",
}


def console(stderr: bool = False) -> Console:
    """A console that never reads text as markup (run names, notes and params are printed as
    they are; styles come from ``Text`` objects) and, when output goes to a file or a pipe,
    never truncates and never pads: lines end at their last character."""
    stream = sys.stderr if stderr else sys.stdout
    interactive = stream.isatty()
    width = None if interactive else 10_000  # tables grow only as wide as their content
    return Console(
        file=stream if interactive else _Unpadded(stream),
        width=width,
        highlight=False,
        markup=False,
        soft_wrap=not interactive,
    )


class _Unpadded(io.TextIOBase):
    """A text stream that writes each line without its trailing spaces (Rich pads table
    cells and lines to their width)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._pending = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        if lines:
            self._stream.write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._pending:  # a print without a newline: written as it is
            self._stream.write(self._pending)
            self._pending = ""
        self._stream.flush()


def dim(text: str) -> Text:
    return Text(text, style="dim")


def print_json(text: str) -> None:
    """Machine-readable output: the JSON text, nothing else."""
    sys.stdout.write(text + "\n")


def fmt_number(value: Any, digits: int = 4) -> str:
    """Numbers as people read them: NaN and infinities spelled out, floats to ``digits``
    significant digits, ints in full."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == int(value) and abs(value) < 1e15:
            return str(int(value)) if digits < 15 else repr(value)
        return f"{value:.{digits}g}"
    return str(value)


def fmt_value(value: Any, width: int = 32) -> str:
    """A param value: numbers via ``fmt_number``, strings as they are, lists as compact JSON."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool | int | float) or value is None:
        text = fmt_number(value, digits=6)
    else:
        text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def fmt_metric(value: float | None, unit: str | None = None, digits: int = 4) -> str:
    text = fmt_number(value, digits)
    return f"{text}{unit}" if unit and value is not None else text


def fmt_duration(seconds: float | None) -> str:
    """``850ms``, ``12.3s``, ``4m 05s``, ``2h 03m``, ``3d 04h``."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def fmt_time(epoch: float | None, *, seconds: bool = False) -> str:
    """Local time: ``2026-11-21 14:03`` (with seconds on request)."""
    if epoch is None:
        return "—"
    moment = _dt.datetime.fromtimestamp(epoch)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def fmt_bytes(size: float | None) -> str:
    if size is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def to_json(value: Any, indent: int | None = 2) -> str:
    """JSON for ``--json`` output and exports. Strict JSON has no spelling for NaN and
    infinities, so they become the strings "NaN", "Infinity" and "-Infinity" (JavaScript's
    names; ``float()`` reads them back)."""
    return json.dumps(_json_safe(value), indent=indent, ensure_ascii=False, allow_nan=False)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
