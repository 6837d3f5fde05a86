"""Text for the notebook: numbers, durations, dates, markdown escapes and anchors.

Everything here is deterministic: dates are UTC (the same store gives the same bytes on any
machine), and nothing reads the clock. The number rules are those of ``expbook ls``
(``expbook.cli.output``), repeated here because ``report/`` does not depend on the CLI.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import unicodedata
from typing import Any

from expbook.columns import MISSING

DASH = "—"


def fmt_number(value: Any, digits: int = 4) -> str:
    """``0.9666``, ``1.01``, ``64``, ``nan``, ``inf``; ``—`` for None."""
    if value is None or value is MISSING:
        return DASH
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
            return str(int(value))
        return f"{value:.{digits}g}"
    return str(value)


def fmt_metric(value: float | None, unit: str | None = None) -> str:
    """A metric value with its unit (``55.46%``)."""
    text = fmt_number(value)
    return f"{text}{unit}" if unit and value is not None else text


def fmt_value(value: Any, width: int = 40) -> str:
    """A param value: numbers to 6 significant digits, strings as they are, other values as
    compact JSON; ``(unset)`` for a param a run does not have."""
    if value is MISSING:
        return "(unset)"
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool | int | float) or value is None:
        text = "null" if value is None else fmt_number(value, digits=6)
    else:
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"


def fmt_duration(seconds: float | None) -> str:
    """``850ms``, ``12.3s``, ``4m 05s``, ``2h 03m``, ``3d 04h``."""
    if seconds is None:
        return DASH
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


def fmt_date(epoch: float | None) -> str:
    """``2026-11-21 14:03 UTC``."""
    if epoch is None:
        return DASH
    moment = _dt.datetime.fromtimestamp(epoch, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def fmt_bytes(size: float | None) -> str:
    """``7.8 GiB``."""
    if size is None:
        return DASH
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def plural(count: int, word: str) -> str:
    """``1 run``, ``4 runs``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


_SPECIAL = re.compile(r"([\\`*\[\]<>|~&])|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def escape(text: str) -> str:
    """Text shown as it is in markdown (run names, param values): markdown punctuation
    backslash-escaped (``_`` only where it could start emphasis), on one line."""
    flat = " ".join(str(text).split())
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), flat)


def code(text: str) -> str:
    """``text`` as an inline code span, whatever backticks it holds."""
    flat = " ".join(str(text).split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def anchor(title: str) -> str:
    """The anchor GitHub (and our HTML) gives a heading: lowercase, punctuation dropped, spaces
    as hyphens (``demo: hidden size`` → ``demo-hidden-size``)."""
    text = re.sub(r"[^\w\- ]", "", title.strip().lower())
    return text.replace(" ", "-")


def file_slug(title: str, limit: int = 48) -> str:
    """A file-name-safe slug: ascii letters, digits and single hyphens."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "section"
