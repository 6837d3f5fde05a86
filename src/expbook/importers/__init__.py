"""Importers: runs from other trackers (TensorBoard event files, MLflow) into a store.

Importing is idempotent. Every source run maps to one fixed expbook run UUID (MLflow's own run
id; for TensorBoard a UUID derived from the run directory's name and its first event file), so
importing again finds the run it made before and adds only what the run lacks:

- points: a source point (step, wall time, value) the stored series does not hold, counted
  with multiplicity, so a run that grew gets the new points only and nothing is stored twice;
- params, tags and notes the run does not have; status and end time when they changed (a run
  that was running at the last import and has ended since);
- the name, experiment and start time are set once, when the run is created: renaming or
  moving an imported run in expbook survives importing again.

The readers (``tensorboard.read_logdir``, ``mlflow.read_tracking``) import their packages
lazily and turn the source into ``SourceRun`` objects; ``import_runs`` compares them with the
store and writes (or, dry, only counts) the difference.
"""

from __future__ import annotations

import uuid
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from expbook.errors import ExpbookError, InvalidKeyError, InvalidValueError
from expbook.model import RunRecord, RunStatus, Series
from expbook.store.base import RunQuery, RunSpec, Store, WriteBatch
from expbook.store.chunks import Points
from expbook.validation import check_key, check_name, check_tag, flatten_params

IMPORTED_HEARTBEAT = 900.0
"""The heartbeat interval of imported runs: a run still running in the source gets its last
point's time as heartbeat, so it shows as crashed an hour after the source last heard of it."""

NAMESPACE = uuid.UUID("5b0f6a3e-4f1c-4b8e-9a57-2f5d3c1e8b60")
"""The namespace of the run UUIDs derived from a source's identity (``run_uuid``)."""


class ImportSourceError(ExpbookError):
    """The source cannot be read: a missing directory, no event files, an unreachable or
    unknown tracking URI, an experiment the source does not have, a package not installed."""


def require(module: str, package: str) -> None:
    """Raise ImportSourceError naming ``package`` when ``module`` cannot be imported."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ImportSourceError(
            f"this import needs the {package!r} package: pip install {package} "
            "(or pip install 'expbook[import]')"
        )


def run_uuid(identity: str) -> str:
    """The expbook run UUID (32 hex characters) for a source run's identity text."""
    return uuid.uuid5(NAMESPACE, identity).hex


@dataclass(slots=True)
class SourceRun:
    """One run as a source has it, in expbook's terms."""

    id: str
    name: str
    origin: str
    """Where it comes from, for the report: a TensorBoard run directory, an MLflow run id."""
    started_at: float
    ended_at: float | None = None
    status: RunStatus = RunStatus.FINISHED
    experiment: str | None = None
    parent: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    notes: list[tuple[float, str]] = field(default_factory=list)
    points: dict[str, Points] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)
    """Run columns set on creation: ``command``, ``git_commit``, ``git_branch``..."""
    attachments: dict[str, bytes] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    """What the source has that is not imported, by kind (``histograms tags``: 2)."""

    def add_points(self, key: str, points: Points) -> None:
        """Add a series, or count it as skipped when expbook refuses its key."""
        try:
            check_key(key)
        except InvalidKeyError:
            self.skipped[f"metric keys expbook refuses ({key!r}...)"] += 1
            return
        if key in self.points:
            self.points[key].extend(points)
        else:
            self.points[key] = points

    def add_params(self, params: dict[str, Any]) -> None:
        for key, value in params.items():
            try:
                self.params.update(flatten_params({key: value}))
            except (InvalidKeyError, InvalidValueError):
                self.skipped["params expbook refuses"] += 1

    def add_tag(self, tag: str) -> None:
        try:
            self.tags.add(check_tag(tag))
        except InvalidValueError:
            self.skipped["tags expbook refuses (multi-line or empty)"] += 1


@dataclass(slots=True)
class RunOutcome:
    """What importing one source run did (or, dry, would do)."""

    source: SourceRun
    state: str
    """``new``, ``updated`` or ``unchanged``."""
    number: int | None = None
    points: int = 0
    keys: int = 0
    params: int = 0
    tags: int = 0
    notes: int = 0


@dataclass(slots=True)
class ImportReport:
    """What an import did: one outcome per source run, and what the source had that was not
    imported (``skipped``: kind -> count)."""

    source: str
    dry_run: bool = False
    outcomes: list[RunOutcome] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    experiments: list[str] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.state == state)

    def total(self, what: str) -> int:
        return sum(getattr(outcome, what) for outcome in self.outcomes)


def import_runs(
    store: Store | None,
    runs: Iterable[SourceRun],
    report: ImportReport,
    *,
    dry_run: bool = False,
) -> ImportReport:
    """Bring each source run into ``store``: create it, or add what it lacks.

    With ``dry_run`` nothing is written; ``store`` may then be None (a store that does not
    exist yet: every run is new).
    """
    report.dry_run = dry_run
    for run in runs:
        report.skipped.update(run.skipped)
        report.outcomes.append(sync_run(store, run, dry_run=dry_run))
    return report


def sync_run(store: Store | None, run: SourceRun, *, dry_run: bool = False) -> RunOutcome:
    """Create ``run`` in the store, or top up the run imported from it before."""
    record = _existing(store, run.id)
    points = _new_points(store, record, run)
    params = {
        key: value
        for key, value in run.params.items()
        if record is None or key not in record.params or record.params[key] != value
    }
    tags = run.tags - set(record.tags) if record is not None else set(run.tags)
    known_notes = {note.text for note in record.notes} if record is not None else set()
    notes = [note for note in run.notes if note[1] not in known_notes]
    update = _changed_columns(store, record, run)
    outcome = RunOutcome(
        source=run,
        state="new" if record is None else "unchanged",
        number=record.number if record is not None else None,
        points=sum(len(p) for p in points.values()),
        keys=len(points),
        params=len(params),
        tags=len(tags),
        notes=len(notes),
    )
    if record is not None and (points or params or tags or notes or update):
        outcome.state = "updated"
    if dry_run or store is None or outcome.state == "unchanged":
        return outcome
    batch = WriteBatch(points=points, notes=notes, update=update)
    if run.status is RunStatus.RUNNING:
        batch.heartbeat = _last_seen(run)
    if record is None:
        created = store.create_run(
            RunSpec(
                id=run.id,
                name=run.name,
                experiment=run.experiment,
                params=params,
                tags=sorted(tags),
                command=run.columns.get("command", ()),
                started_at=run.started_at,
                heartbeat_interval=IMPORTED_HEARTBEAT,
            )
        )
        outcome.number = created.number
        batch.update.update({k: v for k, v in run.columns.items() if k != "command"})
        batch.attachments = dict(run.attachments)
    else:
        batch.params, batch.tags_add = params, tags
    store.write(run.id, batch)
    return outcome


def _existing(store: Store | None, run_id: str) -> RunRecord | None:
    if store is None:
        return None
    found = store.find_runs(RunQuery(ids=(run_id,)))
    return found[0] if found else None


def _new_points(
    store: Store | None, record: RunRecord | None, run: SourceRun
) -> dict[str, Points]:
    """Per key, the source points the stored series lacks (all of them for a new run)."""
    if store is None or record is None:
        return {key: points for key, points in run.points.items() if len(points)}
    new = {}
    for key, points in run.points.items():
        summary = record.metrics.get(key)
        if summary is not None and summary.count:
            points = missing_points(points, store.get_series(run.id, key))
        if len(points):
            new[key] = points
    return new


def missing_points(points: Points, stored: Series) -> Points:
    """The points not in ``stored``, compared by (step, wall time, value bits) with
    multiplicity: a point logged twice in the source and once in the store is added once."""
    have = Counter(zip(stored.steps, stored.times, _bits(stored.values), strict=True))
    missing = Points()
    mine = zip(
        points.steps, points.times, _bits(points.values), points.values, points.epochs, strict=True
    )
    for step, time, bits, value, epoch in mine:
        if have[step, time, bits] > 0:
            have[step, time, bits] -= 1
        else:
            missing.append(step, value, time, None if epoch != epoch else epoch)
    return missing


def _bits(values: array) -> array:
    """The float64 values as their bit patterns (so NaN equals NaN)."""
    bits = array("Q")
    bits.frombytes(values.tobytes())
    return bits


def _changed_columns(
    store: Store | None, record: RunRecord | None, run: SourceRun
) -> dict[str, Any]:
    """Run columns to write: the ending for a new run or one whose ending changed, the
    parent once it is in the store."""
    update: dict[str, Any] = {}
    stored = None if record is None else record.status
    if stored is RunStatus.CRASHED:  # derived from a stale heartbeat: running in the store
        stored = RunStatus.RUNNING
    if stored is not run.status or (record is not None and record.ended_at != run.ended_at):
        update["status"] = run.status.value
        if run.ended_at is not None or record is not None:
            update["ended_at"] = run.ended_at
    has_parent = record is not None and record.parent_id is not None
    if run.parent and not has_parent and _existing(store, run.parent) is not None:
        update["parent"] = run.parent
    return update


def _last_seen(run: SourceRun) -> float:
    """The time of the source run's last point (its start when it has none)."""
    return max((max(p.times) for p in run.points.values() if len(p)), default=run.started_at)


def check_experiment_name(name: str) -> str:
    """An experiment name as expbook accepts it (raises InvalidValueError otherwise)."""
    return check_name(name, "experiment name", "the question the experiment answers")
