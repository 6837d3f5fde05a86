"""The data model: plain, frozen value objects returned by every store.

Records never change after they are returned; a later write to the store produces new records.
Live handles (``expbook.tracking.Run``) are separate: they write, records are read.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pandas


class RunStatus(enum.StrEnum):
    """Where a run is in its life.

    ``crashed`` is never written by a client: a store reports a ``running`` run as crashed once its
    heartbeat is stale (the process died without saying so, e.g. ``kill -9`` or a lost machine).
    """

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CRASHED = "crashed"
    PRUNED = "pruned"
    """A sweep trial's run stopped by the sweep's pruner (its curve could not beat the best)."""

    def is_terminal(self) -> bool:
        """True for every status but ``running``."""
        return self is not RunStatus.RUNNING


class SweepState(enum.StrEnum):
    """Where a sweep is: agents add and claim trials only while it is ``running``."""

    RUNNING = "running"
    STOPPED = "stopped"
    FINISHED = "finished"


class TrialState(enum.StrEnum):
    """Where a sweep trial is.

    ``queued``: waiting for an agent to claim it (a re-queued crash, or added for later);
    ``running``: leased to one agent, which renews the lease with heartbeats; ``crashed``: its
    agent stopped sending heartbeats; ``stopped``: the sweep was stopped while it ran.
    """

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    PRUNED = "pruned"
    CRASHED = "crashed"
    STOPPED = "stopped"

    def is_finished(self) -> bool:
        """True once the trial will not change any more (neither queued nor running)."""
        return self not in (TrialState.QUEUED, TrialState.RUNNING)


@dataclass(frozen=True, slots=True)
class SpecVersion:
    """A spec an edit of a sweep replaced: the sweep's version then, and when it was replaced."""

    version: int
    replaced_at: float
    spec: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SweepRecord:
    """A sweep as stored: ``spec`` is the spec as given (JSON data); ``version`` grows by one
    with every change to the sweep or its set of trials (agents add trials by compare-and-set
    on it, see ``Store.add_trial``)."""

    id: str
    name: str
    state: SweepState
    spec: Mapping[str, Any]
    version: int
    experiment: str | None
    created_at: float
    updated_at: float
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """One trial of a sweep, frozen at the time it was read.

    ``number`` counts the sweep's trials from 0; ``config`` numbers configurations (the repeats
    of one configuration, and its re-queued attempts after a crash, share it), ``repeat`` is the
    repeat's index and ``attempt`` counts runs of the same (config, repeat) from 1. ``config_key``
    is the canonical text of ``params`` (``expbook.sweep.space``). ``worker`` holds the lease
    while ``state`` is ``running``, renewed at ``heartbeat_at``. ``values`` are the objective
    values (one per metric; None where a metric was not logged); ``pruned_step`` the step at
    which the pruner stopped it.
    """

    sweep_id: str
    number: int
    config: int
    repeat: int
    config_key: str
    params: Mapping[str, Any]
    state: TrialState
    attempt: int = 1
    run_id: str | None = None
    run_number: int | None = None
    worker: str | None = None
    heartbeat_at: float | None = None
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    values: tuple[float | None, ...] | None = None
    pruned_step: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """Per-key summary of a run's metric: the "Learner Summary" row.

    ``value`` is the latest value (logged or set directly); ``min``/``max`` ignore NaN and carry
    the step and epoch where they occurred. ``count`` is the number of logged points (a value set
    directly with ``run.summary[...]`` or ``expbook set-metric`` is not a point).
    """

    key: str
    value: float
    step: int | None = None
    epoch: float | None = None
    time: float | None = None
    min: float | None = None
    min_step: int | None = None
    min_epoch: float | None = None
    max: float | None = None
    max_step: int | None = None
    max_epoch: float | None = None
    count: int = 0
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Note:
    """A timestamped markdown note on a run."""

    id: int
    created_at: float
    text: str


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """A file a run keeps (see docs/artifacts.md): ``name`` is its path inside the run
    (``checkpoints/best.pt``); the content is the blob ``sha256`` in the store's artifact
    location, shared by every run that logged the same bytes."""

    name: str
    sha256: str
    size: int
    logged_at: float


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token of the team server (``expbook token``), as stored: never its secret, which
    only its creator sees once. ``read_only`` tokens may read but not change anything; a token
    with ``revoked_at`` set is refused. ``last_used_at`` is updated at most once a minute."""

    name: str
    read_only: bool
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        """Whether the server accepts it (it is not revoked)."""
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """Lines a run's program printed, as stored: ``id`` orders chunks; ``text`` ends in a
    newline; ``stream`` is ``stdout`` or ``stderr``."""

    id: int
    stream: str
    time: float
    text: str


@dataclass(frozen=True, slots=True)
class GitInfo:
    """The git state of the working tree a run started from."""

    commit: str | None = None
    branch: str | None = None
    remote: str | None = None
    dirty: bool | None = None

    @property
    def short_commit(self) -> str | None:
        return self.commit[:8] if self.commit else None


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """A question under study, with its runs' conclusion."""

    id: int
    name: str
    description: str | None = None
    hypothesis: str | None = None
    conclusion: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    run_count: int = 0


@dataclass(frozen=True, slots=True)
class RunRecord:
    """Everything a store knows about one run, frozen at the time it was read."""

    id: str
    number: int
    name: str
    status: RunStatus
    started_at: float
    experiment: str | None = None
    kind: str = "train"
    parent_id: str | None = None
    parent_number: int | None = None
    ended_at: float | None = None
    heartbeat_at: float | None = None
    exit_code: int | None = None
    error: str | None = None
    recording_error: str | None = None
    """A failure of expbook's own recording (a parser that broke, output that could not be
    spooled): what the run may lack. Never the program's failure, which is ``error``."""
    recorded_offset: int | None = None
    """For ``expbook run``: bytes of the spooled output the store has (the recorder's bookmark,
    so that resuming a recording stores nothing twice)."""
    recorded_autolog: Mapping[str, int] = field(default_factory=dict)
    """Likewise for the autolog records of ``expbook run``: bytes of each records file
    (``autolog-<pid>.jsonl``) the store has."""
    command: tuple[str, ...] = ()
    cwd: str | None = None
    pid: int | None = None
    hostname: str | None = None
    git: GitInfo = field(default_factory=GitInfo)
    host: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    metrics: Mapping[str, MetricSummary] = field(default_factory=dict)
    notes: tuple[Note, ...] = ()

    @property
    def ref(self) -> str:
        """The short reference people use: ``#12``."""
        return f"#{self.number}"

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; for a running run, to now; for a crashed run, to its last
        heartbeat."""
        if self.ended_at is not None:
            end = self.ended_at
        elif self.status is RunStatus.RUNNING:
            end = time.time()
        else:
            end = self.heartbeat_at
        return None if end is None else max(0.0, end - self.started_at)

    def metric(self, key: str, default: float | None = None) -> float | None:
        """The summary value of ``key`` (its latest value), or ``default``."""
        summary = self.metrics.get(key)
        return default if summary is None else summary.value

    def to_row(self) -> dict[str, Any]:
        """The run as one flat row: identity columns, ``params.KEY`` per param, and per metric
        ``metrics.KEY`` (latest value), ``min(metrics.KEY)`` and ``max(metrics.KEY)`` — column
        names that are valid filter fields. Times are Unix seconds, ``tags`` a list."""
        row: dict[str, Any] = {
            "number": self.number,
            "id": self.id,
            "name": self.name,
            "experiment": self.experiment,
            "status": self.status.value,
            "kind": self.kind,
            "parent": self.parent_number,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_s": self.duration,
            "commit": self.git.commit,
            "branch": self.git.branch,
            "dirty": self.git.dirty,
            "host": self.hostname,
            "tags": list(self.tags),
        }
        for key, value in self.params.items():
            row[f"params.{key}"] = value
        for key, summary in self.metrics.items():
            row[f"metrics.{key}"] = summary.value
            row[f"min(metrics.{key})"] = summary.min
            row[f"max(metrics.{key})"] = summary.max
        return row

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON types, NaN kept as float) for exports and APIs."""
        return {
            "id": self.id,
            "number": self.number,
            "name": self.name,
            "status": self.status.value,
            "experiment": self.experiment,
            "kind": self.kind,
            "parent_id": self.parent_id,
            "parent_number": self.parent_number,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "heartbeat_at": self.heartbeat_at,
            "duration": self.duration,
            "exit_code": self.exit_code,
            "error": self.error,
            "recording_error": self.recording_error,
            "command": list(self.command),
            "cwd": self.cwd,
            "pid": self.pid,
            "hostname": self.hostname,
            "git": {
                "commit": self.git.commit,
                "branch": self.git.branch,
                "remote": self.git.remote,
                "dirty": self.git.dirty,
            },
            "host": dict(self.host),
            "params": dict(self.params),
            "tags": list(self.tags),
            "metrics": {key: _summary_dict(s) for key, s in self.metrics.items()},
            "notes": [
                {"id": n.id, "created_at": n.created_at, "text": n.text} for n in self.notes
            ],
        }


def _summary_dict(summary: MetricSummary) -> dict[str, Any]:
    data = dataclasses.asdict(summary)
    del data["key"]
    return data


class RunList(tuple[RunRecord, ...]):
    """A tuple of runs with a ``to_pandas()`` helper."""

    __slots__ = ()

    def to_pandas(self) -> pandas.DataFrame:
        """One row per run (``RunRecord.to_row``), with ``started_at``/``ended_at`` as UTC
        timestamps."""
        import pandas

        frame = pandas.DataFrame([run.to_row() for run in self])
        for column in ("started_at", "ended_at"):
            if column in frame:
                frame[column] = pandas.to_datetime(frame[column], unit="s", utc=True)
        return frame


class MetricPoint(NamedTuple):
    """One logged value of a metric."""

    step: int
    value: float
    epoch: float | None
    time: float


@dataclass(frozen=True, slots=True, eq=False)
class Series:
    """All points of one metric of one run, ordered by step (then by the order they were logged).

    The columns are ``array.array`` objects, so ``numpy.asarray(series.values)`` is a zero-copy
    view. ``epochs`` holds NaN where no epoch was logged.
    """

    run_id: str
    key: str
    steps: array = field(default_factory=lambda: array("q"))
    values: array = field(default_factory=lambda: array("d"))
    times: array = field(default_factory=lambda: array("d"))
    epochs: array = field(default_factory=lambda: array("d"))

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[MetricPoint]:
        for step, value, epoch, t in zip(
            self.steps, self.values, self.epochs, self.times, strict=True
        ):
            yield MetricPoint(step, value, None if math.isnan(epoch) else epoch, t)

    def to_pandas(self) -> pandas.DataFrame:
        """Columns ``step``, ``epoch``, ``value``, ``time`` (a UTC timestamp)."""
        import numpy
        import pandas

        return pandas.DataFrame(
            {
                "step": numpy.asarray(self.steps),
                "epoch": numpy.asarray(self.epochs),
                "value": numpy.asarray(self.values),
                "time": pandas.to_datetime(numpy.asarray(self.times), unit="s", utc=True),
            }
        )
