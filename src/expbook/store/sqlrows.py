"""Row mapping and lookups for ``SqlStore``: database rows to records and back."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from expbook.errors import AmbiguousRunError, MetricNotFoundError, RunNotFoundError
from expbook.model import GitInfo, MetricSummary, Note, RunRecord, RunStatus
from expbook.store.base import OutputText, SummaryValue
from expbook.store.chunks import Points
from expbook.store.schema import chunks, metric_summaries, runs
from expbook.validation import shorten, text_problem

_HEX = re.compile(r"[0-9a-f]{4,32}")
_SURROGATES = re.compile("[\ud800-\udfff]")
_LAST = re.compile(r"last(?:~(\d+))?")

CHUNK_COLUMNS = (chunks.c.codec, chunks.c.steps, chunks.c.vals, chunks.c.times, chunks.c.epochs)


def check_metric_exists(connection: Connection, pk: int, key: str) -> None:
    """Raise MetricNotFoundError unless the run has a summary (a set value) for ``key``."""
    found = connection.scalar(
        sa.select(metric_summaries.c.key).where(
            metric_summaries.c.run_id == pk, metric_summaries.c.key == key
        )
    )
    if found is not None:
        return
    number = connection.scalar(sa.select(runs.c.number).where(runs.c.id == pk))
    known = list(
        connection.scalars(
            sa.select(metric_summaries.c.key)
            .where(metric_summaries.c.run_id == pk)
            .order_by(metric_summaries.c.key)
            .limit(8)
        )
    )
    listed = ", ".join(known) if known else "none"
    raise MetricNotFoundError(f"run #{number} has no metric {key!r} (its metrics: {listed})")


def clean(text: str | None) -> str | None:
    """Text every store accepts: NUL characters and lone surrogates become U+FFFD. For text
    that must be kept rather than refused (a traceback, a program's output)."""
    if text and "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if text and not text.isascii():
        text = _SURROGATES.sub("\ufffd", text)
    return text


def reason(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def summary_row(pk: int, key: str, value: SummaryValue) -> dict[str, Any]:
    finite = value.value if value.value == value.value else None
    reported = value.min is not None or value.max is not None
    return {
        "run_id": pk,
        "key": key,
        "value": finite,
        "step": value.step,
        "epoch": value.epoch,
        "time": value.time,
        "min_value": value.min if reported else finite,
        "min_step": value.min_step if reported else value.step,
        "min_epoch": value.min_epoch if reported else value.epoch,
        "max_value": value.max if reported else finite,
        "max_step": value.max_step if reported else value.step,
        "max_epoch": value.max_epoch if reported else value.epoch,
        "count": 0,
        "unit": value.unit,
    }


def output_row(pk: int, output: OutputText) -> dict[str, Any]:
    data = clean(output.text).encode("utf-8", "replace")
    return {
        "run_id": pk,
        "stream": output.stream,
        "time": output.time,
        "lines": output.text.count("\n"),
        "size": len(data),
        "data": zlib.compress(data, 1),  # 170 MB/s and 11x on logs; level 6: 64 MB/s, 13x
    }


def nan(value: float | None) -> float:
    return float("nan") if value is None else value


def summary(row: Any) -> MetricSummary:
    return MetricSummary(
        key=row["key"],
        value=nan(row["value"]),
        step=row["step"],
        epoch=row["epoch"],
        time=row["time"],
        min=row["min_value"],
        min_step=row["min_step"],
        min_epoch=row["min_epoch"],
        max=row["max_value"],
        max_step=row["max_step"],
        max_epoch=row["max_epoch"],
        count=row["count"],
        unit=row["unit"],
    )


def run_record(
    row: Any,
    run_params: dict[str, Any] | None,
    run_tags: list[str] | None,
    metrics: dict[str, MetricSummary] | None,
    run_notes: list[Note] | None,
) -> RunRecord:
    return RunRecord(
        id=row["uuid"],
        number=row["number"],
        name=row["name"],
        status=RunStatus(row["reported_status"]),
        started_at=row["started_at"],
        experiment=row["experiment_name"],
        kind=row["kind"],
        parent_id=row["parent_uuid"],
        parent_number=row["parent_number"],
        ended_at=row["ended_at"],
        heartbeat_at=row["heartbeat_at"],
        exit_code=row["exit_code"],
        error=row["error"],
        recording_error=row["recording_error"],
        recorded_offset=row["recorded_offset"],
        recorded_autolog=MappingProxyType(row["recorded_autolog"] or {}),
        command=tuple(row["command"] or ()),
        cwd=row["cwd"],
        pid=row["pid"],
        hostname=row["hostname"],
        git=GitInfo(row["git_commit"], row["git_branch"], row["git_remote"], row["git_dirty"]),
        host=MappingProxyType(row["host"] or {}),
        params=MappingProxyType(run_params or {}),
        tags=tuple(run_tags or ()),
        metrics=MappingProxyType(metrics or {}),
        notes=tuple(run_notes or ()),
    )


def step_range(points: Points, step_min: int | None, step_max: int | None) -> Points:
    import bisect

    lo = 0 if step_min is None else bisect.bisect_left(points.steps, step_min)
    hi = len(points) if step_max is None else bisect.bisect_right(points.steps, step_max)
    return points.slice(lo, hi)


_BIGGEST = 1 << 63


def resolve_reference(connection: Connection, ref: str | int) -> str:
    text = str(ref).strip()
    if text_problem(text):  # no run has such a name (and it could not be sent in a query)
        raise RunNotFoundError(f"no run matches {shorten(text)}")
    last = _LAST.fullmatch(text)
    if last is not None:
        return _nth_newest(connection, int(last.group(1) or 0), text)
    by_number = text[1:] if text.startswith("#") else text
    # a number beyond 64 bits is no run's (the database could not even compare it); digits
    # may still begin a UUID
    if by_number.isascii() and by_number.isdigit() and int(by_number) < _BIGGEST:
        found = connection.scalar(sa.select(runs.c.uuid).where(runs.c.number == int(by_number)))
        if found is not None:
            return found
        if text.startswith("#"):
            raise RunNotFoundError(f"no run #{by_number}")
    candidates: Iterable[Any] = ()
    lowered = text.lower()
    if _HEX.fullmatch(lowered):
        candidates = connection.execute(
            sa.select(runs.c.uuid, runs.c.number, runs.c.name)
            .where(runs.c.uuid.like(lowered + "%"))
            .limit(6)
        ).all()
    if not candidates:
        candidates = connection.execute(
            sa.select(runs.c.uuid, runs.c.number, runs.c.name)
            .where(runs.c.name == text)
            .order_by(runs.c.number)
            .limit(6)
        ).all()
    candidates = list(candidates)
    if len(candidates) == 1:
        return candidates[0][0]
    if not candidates:
        raise RunNotFoundError(
            f"no run matches {text!r} "
            "(use a number like 12 or #12, last or last~1, a UUID prefix or a unique name)"
        )
    listed = ", ".join(f"#{number} ({name})" for _, number, name in candidates[:5])
    more = " and more" if len(candidates) > 5 else ""
    raise AmbiguousRunError(f"{text!r} matches several runs: {listed}{more}; use a number")


def _nth_newest(connection: Connection, back: int, text: str) -> str:
    """``last`` (the run with the highest number) or ``last~N`` (N runs before it)."""
    found = (
        None
        if back >= _BIGGEST
        else connection.scalar(
            sa.select(runs.c.uuid).order_by(runs.c.number.desc()).offset(back).limit(1)
        )
    )
    if found is None:
        count = connection.scalar(sa.select(sa.func.count()).select_from(runs))
        raise RunNotFoundError(f"no run {text}: the store has {count} run{'s' * (count != 1)}")
    return found
