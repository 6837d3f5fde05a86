"""The store contract.

A ``Store`` is one database of experiments and runs. Every backend follows these rules:

- **One write primitive.** All changes to a run go through ``write(run_id, batch)``: points,
  params, tags, notes, summary values, attachments, column updates and heartbeats, applied
  atomically (all or nothing). Convenience writers (``add_note``, ``set_metric``...) build a batch.
- **Frozen results.** Reads return value objects from ``expbook.model`` that later writes never
  change.
- **Thread and process safety.** A store object may be used from several threads; many processes
  may write one store at once. Transient contention (SQLite's lock, a PostgreSQL serialization
  failure) is retried inside the store and never reaches the caller.
- **Derived status.** A run whose status is ``running`` but whose heartbeat is older than four
  heartbeat intervals is reported as ``crashed``; nothing writes ``crashed``.
- **Sweeps coordinate through the store** (``expbook.sweep``): trials are added by
  compare-and-set on the sweep's ``version`` and leased to one worker at a time with heartbeats;
  every sweep operation is one short transaction that takes the sweep row before its trials, and
  a transaction retried after a lost connection never applies twice.
- **Summaries kept by the writer.** Writing points updates the per-key summary (last value,
  min/max with their step and epoch, count) in the same transaction, so listing and filtering runs
  never reads series.

IDs are run UUIDs (32 hex characters); ``resolve_run`` turns what a user types (``#12``, ``12``,
a UUID prefix, a unique name) into one.
"""

from __future__ import annotations

import abc
import gc
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from expbook.errors import InvalidValueError, StoreError
from expbook.model import (
    ArtifactRecord,
    ExperimentRecord,
    OutputChunk,
    RunList,
    RunRecord,
    RunStatus,
    Series,
    SpecVersion,
    SweepRecord,
    TokenRecord,
    TrialRecord,
    TrialState,
)
from expbook.store.chunks import Points
from expbook.validation import (
    check_key,
    check_name,
    check_run_fields,
    check_tag,
    check_text,
    coerce_metric,
    flatten_params,
    shorten,
)

if TYPE_CHECKING:
    from expbook.store.blobs import BlobStore

ARTIFACTS_SETTING = "artifacts.location"
"""The store setting that names the artifact location (``expbook artifact location URL``)."""

STALE_HEARTBEATS = 4
"""A running run is crashed after this many heartbeat intervals without a heartbeat."""


@dataclass(slots=True)
class RunSpec:
    """What is known about a run when it is created.

    With ``id`` set, creating is idempotent: if a run with that UUID exists, it is returned as it
    is (``expbook run``'s recorder and the program it runs may both create the run they share).
    """

    id: str | None = None
    name: str | None = None
    experiment: str | None = None
    parent: str | None = None
    kind: str = "train"
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Sequence[str] = ()
    command: Sequence[str] = ()
    cwd: str | None = None
    pid: int | None = None
    hostname: str | None = None
    started_at: float = field(default_factory=time.time)
    heartbeat_interval: float = 5.0


@dataclass(slots=True)
class SummaryValue:
    """A summary value set directly (not a logged point).

    It becomes the key's latest value. ``min``/``max`` (with their step and epoch) are for
    sources that report extremes, like a training framework's final summary table; when not
    given, the value itself counts for the key's min and max.
    """

    value: float
    unit: str | None
    time: float
    step: int | None = None
    epoch: float | None = None
    min: float | None = None
    min_step: int | None = None
    min_epoch: float | None = None
    max: float | None = None
    max_step: int | None = None
    max_epoch: float | None = None


@dataclass(frozen=True, slots=True)
class OutputText:
    """Lines a program printed: ``text`` is whole lines, each ending in a newline."""

    stream: str
    time: float
    text: str


RUN_COLUMNS = frozenset(
    {
        "name", "status", "ended_at", "exit_code", "error", "kind", "git_commit", "git_branch",
        "git_remote", "git_dirty", "host", "command", "cwd", "pid", "hostname",
        "recording_error", "recorded_offset", "recorded_autolog",
    }
)  # fmt: skip


RUN_END = ("status", "ended_at", "exit_code")
"""Run columns that say how a run ended: kept together and never dropped (``WriteBatch.parts``)."""


def _how(kind: str, merge: str = "update", cancels: str = "") -> dict[str, str]:
    """A WriteBatch field's metadata: ``kind`` names one of its items in messages; ``merge``
    says how a later batch's value folds in (``update`` a dict; ``extend`` a list, or each value
    of a dict; ``union`` a set, minus what the later batch's ``cancels`` field takes back;
    ``replace`` a single value; ``supersede`` a dict whose keys also take back the same keys of
    the ``cancels`` field: a later rewrite of a series drops the points queued for it before)."""
    return {"kind": kind, "merge": merge, "cancels": cancels}


@dataclass(slots=True)
class WriteBatch:
    """Changes to one run, applied atomically by ``Store.write``.

    ``update`` holds run columns (see ``RUN_COLUMNS``), plus ``experiment`` (a name, or None to
    detach) and ``parent`` (a run UUID, or None). ``note_edits`` maps a note id of the run to
    its new text, or None to delete it. Later values win when batches are merged.

    ``replaced`` maps a key to the points its whole series becomes (the old points and summary
    of the key are dropped first, then this batch's ``points`` of the key, if any, are added):
    how the system sampler coarsens the older part of a long run (``expbook.system.coarsen``).

    ``merge``, ``is_empty`` and ``parts`` loop over the fields (their metadata says how each
    merges), so a new field is merged, split and tested without being listed anywhere else.
    """

    replaced: dict[str, Points] = field(
        default_factory=dict, metadata=_how("rewritten series", "supersede", "points")
    )  # before ``points``: ``parts`` merged back must rewrite a series before adding to it
    points: dict[str, Points] = field(default_factory=dict, metadata=_how("metric", "extend"))
    params: dict[str, Any] = field(default_factory=dict, metadata=_how("param"))
    tags_add: set[str] = field(default_factory=set, metadata=_how("tag", "union", "tags_remove"))
    tags_remove: set[str] = field(
        default_factory=set, metadata=_how("removed tag", "union", "tags_add")
    )
    notes: list[tuple[float, str]] = field(default_factory=list, metadata=_how("note", "extend"))
    note_edits: dict[int, str | None] = field(default_factory=dict, metadata=_how("edit of note"))
    summary: dict[str, SummaryValue] = field(default_factory=dict, metadata=_how("summary value"))
    attachments: dict[str, bytes] = field(default_factory=dict, metadata=_how("attachment"))
    artifacts: dict[str, ArtifactRecord] = field(default_factory=dict, metadata=_how("artifact"))
    output: list[OutputText] = field(default_factory=list, metadata=_how("output", "extend"))
    update: dict[str, Any] = field(default_factory=dict, metadata=_how("run field"))
    heartbeat: float | None = field(default=None, metadata=_how("heartbeat", "replace"))
    batch_id: str | None = None
    """The batch's identity, not a change: ``Store.write`` applies a batch id at most once per
    run (SQL stores record the latest ids of each run in the write's own transaction), so a
    write retried after a lost answer cannot apply it twice. None: the store makes one per call
    (which protects its own retries only). ``merge`` keeps the earlier batch's id, so merging
    into a batch is only right before it is first written: a batch whose write failed may have
    been applied, and must be retried alone with its id (the run writer does so); ``parts``
    have no id."""

    def is_empty(self) -> bool:
        for name, merge, _, _ in _FIELDS:
            value = getattr(self, name)
            if value is not None if merge == "replace" else value:
                return False
        return True

    def point_count(self) -> int:
        return sum(len(p) for part in (self.replaced, self.points) for p in part.values())

    def merge(self, later: WriteBatch) -> None:
        """Fold a later batch into this one (used when a write must be retried)."""
        for name, merge, cancels, _ in _FIELDS:
            new = getattr(later, name)
            if merge == "replace":
                if new is not None:
                    setattr(self, name, new)
            elif merge == "union":
                taken_back = getattr(later, cancels)
                if new or taken_back:
                    setattr(self, name, (getattr(self, name) - taken_back) | new)
            elif new:
                mine = getattr(self, name)
                if merge == "supersede":
                    earlier = getattr(self, cancels)
                    for key in new:
                        earlier.pop(key, None)
                    mine.update(new)
                elif merge == "update":
                    mine.update(new)
                elif isinstance(mine, list):
                    mine.extend(new)
                else:  # a dict of growable values (the points of each key)
                    for key, value in new.items():
                        if key in mine:
                            mine[key].extend(value)
                        else:
                            mine[key] = value

    def parts(self) -> list[tuple[str, WriteBatch]]:
        """The batch as one small batch per item, each with what it is ("note 'text'", "param
        'lr'", "metric 'loss'"), in an order that merged back gives this batch. The run's
        ending (``RUN_END`` columns) stays one part. Used to find the one item a database
        refuses."""
        found: list[tuple[str, WriteBatch]] = []
        for name, merge, _, kind in _FIELDS:
            value = getattr(self, name)
            if merge == "replace":
                if value is not None:
                    found.append((kind, WriteBatch(**{name: value})))
                continue
            if name == "update" and any(key in value for key in RUN_END):
                ending = {key: value[key] for key in RUN_END if key in value}
                found.append(("the run's status and end time", WriteBatch(update=ending)))
                value = {key: v for key, v in value.items() if key not in RUN_END}
            if isinstance(value, dict):
                items = [(repr(key), {key: item}) for key, item in value.items()]
            elif isinstance(value, set):
                items = [(repr(item), {item}) for item in sorted(value)]
            else:
                items = [(_preview(item), [item]) for item in value]
            found += [(f"{kind} {what}", WriteBatch(**{name: one})) for what, one in items]
        return found


def _preview(item: Any) -> str:
    """A note (time, text) or an output (OutputText) as a short quoted text."""
    text = item.text if isinstance(item, OutputText) else item[-1]
    return repr(text if len(text) <= 40 else text[:39] + "…")


_FIELDS = tuple(
    (f.name, f.metadata["merge"], f.metadata["cancels"], f.metadata["kind"])
    for f in fields(WriteBatch)
    if "merge" in f.metadata  # not ``batch_id``
)


@dataclass(frozen=True, slots=True)
class KeyCounts:
    """How many of some runs have each param and each metric key (:meth:`Store.key_counts`)."""

    runs: int
    params: Mapping[str, int]
    metrics: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Which runs to read, in which order.

    ``where`` is a filter expression (see docs/filter.md); ``sort`` a sort expression such as
    ``"-metrics.valid/acc, number"``. Without ``sort``, newest runs (highest number) come first.
    """

    where: str | None = None
    sort: str | None = None
    experiments: tuple[str, ...] = ()
    statuses: tuple[RunStatus, ...] = ()
    ids: tuple[str, ...] = ()
    limit: int | None = None
    offset: int = 0


class Store(abc.ABC):
    """One database of runs and experiments. See the module docstring for the contract."""

    url: str

    # --- primitives every backend implements -------------------------------------------------

    @abc.abstractmethod
    def create_run(self, spec: RunSpec) -> RunRecord:
        """Create a ``running`` run with the next number.

        Raises:
            RunNotFoundError: ``spec.parent`` names no run.
        """

    @abc.abstractmethod
    def write(
        self, run_id: str, batch: WriteBatch, *, timeout: float | None = None,
        deferred: bool = False,
    ) -> None:  # fmt: skip
        """Apply ``batch`` to run ``run_id`` atomically, and at most once per ``batch.batch_id``
        (a batch whose id was applied to the run already is skipped: see ``WriteBatch.batch_id``).

        Args:
            timeout: how long to keep retrying transient contention (a locked SQLite file, a
                dropped connection) before raising; default: the store's own limit (5 minutes).
            deferred: the caller (a run's writer thread) lets the store return once the batch
                is durable, before it is applied: a remote store returns once the batch is in
                its journal and applies it in the background, reporting what the database
                refuses itself (dropping only the refused items, in one line each). Stores
                that apply at once ignore it.

        Raises:
            RunNotFoundError: the run does not exist (it may have been deleted).
            StoreError: the store could not be written.
        """

    @abc.abstractmethod
    def find_runs(self, query: RunQuery) -> RunList:
        """Runs matching ``query``.

        Raises:
            FilterSyntaxError: ``query.where`` or ``query.sort`` cannot be parsed.
        """

    @abc.abstractmethod
    def count_runs(self, query: RunQuery) -> int:
        """How many runs match ``query`` (ignoring limit and offset)."""

    @abc.abstractmethod
    def resolve_run(self, ref: str | int) -> str:
        """The UUID of the run ``ref`` names: ``12``/``#12``, a UUID prefix or a unique name.

        Raises:
            RunNotFoundError: nothing matches.
            AmbiguousRunError: a prefix or name matches several runs.
        """

    @abc.abstractmethod
    def get_series(
        self, run_id: str, key: str, *, step_min: int | None = None, step_max: int | None = None
    ) -> Series:
        """All points of ``key`` in run ``run_id`` (within the step range, if given).

        Raises:
            MetricNotFoundError: the run has neither points nor a summary value for ``key``.
        """

    @abc.abstractmethod
    def iter_series(
        self, run_ids: Sequence[str], keys: Sequence[str] | None = None
    ) -> Iterator[Series]:
        """Every series of the runs (only ``keys``, if given), run by run, keys sorted; reads
        in bulk, for exports."""

    @abc.abstractmethod
    def series_keys(self, run_id: str) -> list[str]:
        """Keys that have logged points in run ``run_id``, sorted."""

    @abc.abstractmethod
    def get_attachment(self, run_id: str, name: str) -> bytes | None:
        """The content of attachment ``name`` of the run (e.g. ``git.diff``), or None."""

    @abc.abstractmethod
    def list_attachments(self, run_id: str) -> dict[str, int]:
        """Attachment names of the run with their sizes in bytes."""

    @abc.abstractmethod
    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        """The run's artifacts, sorted by name."""

    @abc.abstractmethod
    def artifact_references(self, hashes: Sequence[str]) -> set[str]:
        """Those of ``hashes`` that some run's artifact still holds."""

    @abc.abstractmethod
    def get_setting(self, key: str) -> str | None:
        """A setting of the store itself (``artifacts.location``), or None."""

    @abc.abstractmethod
    def set_setting(self, key: str, value: str | None) -> None:
        """Set a store setting for every client of the store; None removes it."""

    @abc.abstractmethod
    def get_output(
        self, run_id: str, *, after: int = 0, last: int | None = None
    ) -> list[OutputChunk]:
        """What the run's program printed (``expbook run``), in order, from chunk ``after`` on;
        only the ``last`` chunks of those, if given (a tail)."""

    @abc.abstractmethod
    def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Delete runs and everything they own, and the artifact blobs no other run holds;
        children keep existing without a parent. Returns how many were deleted.

        Raises:
            StoreError: the runs were deleted, but blobs of theirs could not be removed.
        """

    @abc.abstractmethod
    def create_experiment(
        self, name: str, *, description: str | None = None, hypothesis: str | None = None
    ) -> ExperimentRecord:
        """Create an experiment, or return the existing one of that name unchanged."""

    @abc.abstractmethod
    def get_experiment(self, name: str) -> ExperimentRecord:
        """Raises ExperimentNotFoundError when no experiment has that name."""

    @abc.abstractmethod
    def list_experiments(self) -> list[ExperimentRecord]:
        """All experiments, oldest first."""

    @abc.abstractmethod
    def update_experiment(self, name: str, /, **fields: str | None) -> ExperimentRecord:
        """Set ``name``, ``description``, ``hypothesis`` or ``conclusion`` of an experiment."""

    # --- sweeps (expbook.sweep; docs/design.md "Sweeps: coordinated through the store") ------

    @abc.abstractmethod
    def create_sweep(
        self, name: str, spec: Mapping[str, Any], *, experiment: str | None = None
    ) -> SweepRecord:
        """Create a ``running`` sweep at version 0 (the experiment is created if missing).

        Args:
            spec: the spec as given, JSON data; stored as it is.

        Raises:
            SweepExistsError: a sweep of that name exists.
            InvalidValueError: the name is not a one-line label, or ``spec`` is not JSON data.
        """

    @abc.abstractmethod
    def get_sweep(self, ref: str) -> SweepRecord:
        """The sweep ``ref`` names: its name, its UUID or a unique prefix of it.

        Raises:
            SweepNotFoundError: nothing matches (``AmbiguousSweepError``, a subclass: a prefix
                matches several sweeps).
        """

    @abc.abstractmethod
    def list_sweeps(self) -> list[SweepRecord]:
        """All sweeps, oldest first."""

    @abc.abstractmethod
    def update_sweep(
        self,
        sweep_id: str,
        *,
        spec: Mapping[str, Any] | None = None,
        state: str | None = None,
        expected_version: int | None = None,
    ) -> SweepRecord | None:
        """Replace the spec and/or set the state (``running``, ``stopped``, ``finished``) of a
        sweep, bumping its version. Leaving ``running`` sets ``ended_at``; going back clears it.

        Args:
            expected_version: compare-and-set: change the sweep only if its version is still
                this one.

        Returns:
            The sweep as changed; None when ``expected_version`` was given and the version had
            moved (nothing changed: re-read and decide again).

        Raises:
            SweepNotFoundError: no sweep has that UUID.
            InvalidValueError: an unknown state, or a spec that is not JSON data.
        """

    @abc.abstractmethod
    def sweep_history(self, sweep_id: str) -> list[SpecVersion]:
        """The specs ``update_sweep`` replaced, oldest first (each kept in the transaction
        that replaced it).

        Raises:
            SweepNotFoundError: no sweep has that UUID.
        """

    @abc.abstractmethod
    def delete_sweep(self, sweep_id: str) -> None:
        """Delete the sweep and its trials; the trials' runs stay (as ordinary runs).

        Raises:
            SweepNotFoundError: no sweep has that UUID.
        """

    @abc.abstractmethod
    def list_trials(self, sweep_id: str) -> list[TrialRecord]:
        """The sweep's trials by number, each with its run's number (None once the run was
        deleted or before one is linked)."""

    @abc.abstractmethod
    def add_trial(
        self,
        sweep_id: str,
        *,
        expected_version: int,
        params: Mapping[str, Any],
        config_key: str,
        config: int | None = None,
        repeat: int = 0,
        worker: str | None,
        state: TrialState = TrialState.RUNNING,
        run_id: str | None = None,
        values: Sequence[float | None] | None = None,
    ) -> TrialRecord | None:
        """Add a trial by compare-and-set on the sweep's version, in one transaction: the
        version moves from ``expected_version`` to the next only if the sweep is ``running``
        and nobody changed it since it was read; then the trial is inserted with the next
        number. A ``running`` trial is leased to ``worker`` (``heartbeat_at`` and
        ``started_at`` now); a ``queued`` one waits for ``claim_trial``; a ``finished`` one with
        ``run_id`` and ``values`` attaches an existing run.

        Args:
            config: the configuration number; None: the next unused one (a new configuration).
                Repeats of one configuration pass its number with another ``repeat``.

        Returns:
            The trial; None when the version had moved or the sweep is not running (nothing
            was inserted: re-read and ask again).

        Raises:
            RunNotFoundError: ``run_id`` names no run.
            InvalidValueError: ``params`` or ``values`` are not JSON data.
        """

    @abc.abstractmethod
    def claim_trial(self, sweep_id: str, worker: str) -> TrialRecord | None:
        """Lease the oldest ``queued`` trial of a running sweep to ``worker`` (now ``running``,
        heartbeat now). Concurrent claimers never get the same trial.

        Returns:
            The claimed trial, or None when none is queued (or the sweep is not running).
        """

    @abc.abstractmethod
    def heartbeat_trials(self, sweep_id: str, numbers: Sequence[int], worker: str) -> set[int]:
        """Renew the leases ``worker`` still holds among trials ``numbers``.

        Returns:
            The numbers it still holds; a trial missing from it was expired (``crashed``) or
            taken over: the worker must stop it and not report it.
        """

    @abc.abstractmethod
    def update_trial(
        self, sweep_id: str, number: int, *, worker: str | None, **fields: Any
    ) -> bool:
        """Set fields of a trial: ``state``, ``run_id`` (a run UUID, or None), ``values``,
        ``pruned_step``, ``error``, ``ended_at``, ``started_at``. A finished state sets
        ``ended_at`` (now) unless given. Does not move the sweep's version.

        Args:
            worker: change the trial only while this worker holds its lease (state
                ``running``, leased to it); None: unconditionally (an edit by a person).

        Returns:
            False when ``worker`` no longer holds the lease (nothing changed), else True.

        Raises:
            TrialNotFoundError: ``worker`` is None and the sweep has no such trial.
            RunNotFoundError: ``run_id`` names no run.
            InvalidValueError: an unknown field or state.
        """

    @abc.abstractmethod
    def expire_trials(
        self, sweep_id: str, *, stale_after: float, max_attempts: int = 1
    ) -> list[TrialRecord]:
        """Mark ``crashed`` every running trial whose heartbeat is older than ``stale_after``
        seconds (``ended_at`` now, error "agent W stopped sending heartbeats"); re-queue a copy
        (same params, config, repeat and key; ``attempt`` + 1) of each whose ``attempt`` is
        below ``max_attempts``. Moves the version when anything expired. Safe to call from
        every agent at once: each crash is recorded by exactly one caller.

        Returns:
            The trials this call marked crashed (as they are now).
        """

    @abc.abstractmethod
    def schema_version(self) -> str | None:
        """The schema revision of the database (None for an empty database)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The store must not be used afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def default_artifact_location(self) -> str | None:
        """Where artifacts go when nothing says otherwise (None: this store has no default)."""
        return None

    # --- API tokens of the team server (``expbook token``; docs/server.md) ---------------------
    # Kept in the database the server serves. A store that is not that database (the HTTP
    # store) keeps the defaults below, which refuse with one line.

    def create_token(self, name: str, read_only: bool = False) -> tuple[TokenRecord, str]:
        """Create an API token; returns it and its secret (``ebk_`` + 43 characters), which is
        stored only as its sha256 and cannot be read back. The name of a revoked token can be
        used again (the revoked token's row is replaced).

        Raises:
            InvalidValueError: the name is not a token name (see ``check_token_name``).
            TokenExistsError: a token of that name exists and is not revoked.
        """
        raise self._no_tokens()

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones too, oldest first."""
        raise self._no_tokens()

    def revoke_token(self, name: str) -> TokenRecord:
        """Revoke the token ``name`` (revoking it again changes nothing); returns it as it is now.

        Raises:
            TokenNotFoundError: no token has that name.
        """
        raise self._no_tokens()

    def check_token(self, secret: str) -> TokenRecord | None:
        """The active token whose secret this is, or None (unknown, malformed or revoked).
        Records the token's use (``last_used_at``) at most once a minute."""
        raise self._no_tokens()

    def _no_tokens(self) -> StoreError:
        return StoreError(
            f"{type(self).__name__} keeps no API tokens: run it where the server's database "
            "is: --store postgresql://..."
        )

    # --- conveniences built on the primitives -------------------------------------------------

    def use_artifacts(self, url: str | None) -> None:
        """Keep artifact contents at ``url`` (an fsspec URL or a folder) for this process,
        whatever the store says: ``expbook server --artifacts URL``, whose clients send their
        artifacts through the server. None goes back to the store's own location.

        Raises:
            StoreError: ``url`` names an unknown protocol, or one whose package is missing.
        """
        from expbook.store.blobs import BlobStore

        if url is not None:
            BlobStore(url)  # fails here on a bad URL, not at the first upload
        self._artifacts_override = url

    def artifact_location(self) -> tuple[str, str]:
        """Where artifact contents are kept (an fsspec URL or a folder) and what says so: the
        location given to ``use_artifacts`` (``expbook server --artifacts``), else the store's
        ``artifacts.location`` setting (shared by every client), else ``$EXPBOOK_ARTIFACTS``,
        else the store's default (``.expbook/artifacts`` next to a SQLite store).

        Raises:
            StoreError: none of those gives a location (a PostgreSQL store without the setting).
        """
        override = getattr(self, "_artifacts_override", None)
        if override:
            return override, "server --artifacts"
        setting = self.get_setting(ARTIFACTS_SETTING)
        if setting:
            return setting, "store setting"
        variable = os.environ.get("EXPBOOK_ARTIFACTS")
        if variable:
            return variable, "EXPBOOK_ARTIFACTS"
        default = self.default_artifact_location()
        if default is None:
            raise StoreError(
                "this store has no artifact location; set one for all its users with "
                "'expbook artifact location s3://BUCKET/PREFIX' (any fsspec URL or a folder)"
            )
        return default, "default"

    def blobs(self) -> BlobStore:
        """The artifact contents (see ``artifact_location``), kept open for this store."""
        from expbook.store.blobs import BlobStore

        url, _ = self.artifact_location()
        cached = getattr(self, "_blob_store", None)
        if cached is None or cached.url != url:
            cached = BlobStore(url)
            self._blob_store = cached
        return cached

    def remove_unreferenced_blobs(self, hashes: Sequence[str]) -> int:
        """Remove the blobs among ``hashes`` that no run holds any more; returns how many.

        Raises:
            StoreError: the artifact location cannot be reached.
        """
        unused = sorted(set(hashes) - self.artifact_references(list(set(hashes))))
        if not unused:
            return 0
        blobs = self.blobs()
        for sha256 in unused:
            blobs.delete(sha256)
        return len(unused)

    def runs(
        self,
        where: str | None = None,
        *,
        sort: str | None = None,
        experiment: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> RunList:
        """Runs matching a filter expression, newest first unless ``sort`` says otherwise."""
        return self.find_runs(
            RunQuery(
                where=where,
                sort=sort,
                experiments=_names(experiment),
                statuses=tuple(parse_status(s) for s in _names(status)),
                limit=limit,
                offset=offset,
            )
        )

    def find_run_values(
        self, query: RunQuery, params: Sequence[str] | None, metrics: Sequence[str] | None
    ) -> RunList:
        """The runs ``query`` selects, read only as far as a table of many runs needs (the
        grouped runs table): id, number, name, experiment, kind, status, start and end, tags,
        the params named (every param with None), and of the metrics named (every metric with
        None) only each one's ``value``, ``min`` and ``max``; nothing else (no notes, git,
        host). This base reads whole runs with :meth:`find_runs` and drops the rest; a backend
        may read less, and may give runs with equal list or object params the same (read-only)
        value.

        Raises:
            FilterSyntaxError: ``query.where`` or ``query.sort`` cannot be parsed.
        """
        import dataclasses

        return RunList(
            dataclasses.replace(
                run,
                params={k: v for k, v in run.params.items() if params is None or k in params},
                metrics={k: v for k, v in run.metrics.items() if metrics is None or k in metrics},
                notes=(),
            )
            for run in self.find_runs(query)
        )

    def key_counts(self, query: RunQuery) -> KeyCounts:
        """How many of the runs ``query`` selects (its limit and offset aside) have each param
        key and each metric key: the columns a table of many runs can offer, without reading
        the runs. This base counts :meth:`find_run_values`' runs; SqlStore counts in SQL (20 ms
        for 10,021 runs, against about 0.4 s to read them)."""
        from collections import Counter

        found = self.find_run_values(replace(query, limit=None, offset=0), None, None)
        params = Counter(key for run in found for key in run.params)
        metrics = Counter(key for run in found for key in run.metrics)
        return KeyCounts(len(found), dict(params), dict(metrics))

    def run(self, ref: str | int) -> RunRecord:
        """The run ``ref`` names (``12``, ``"#12"``, a UUID prefix or a unique name)."""
        run_id = self.resolve_run(ref)
        return self.find_runs(RunQuery(ids=(run_id,)))[0]

    def series(
        self,
        run: str | int | RunRecord,
        key: str,
        *,
        step_min: int | None = None,
        step_max: int | None = None,
    ) -> Series:
        """The points of metric ``key`` of ``run``."""
        return self.get_series(self._id(run), key, step_min=step_min, step_max=step_max)

    def add_note(self, run: str | int | RunRecord, text: str) -> None:
        """Add a note to the run.

        Raises:
            InvalidValueError: ``text`` is empty or holds NUL or lone surrogates.
        """
        check_note(text)
        self.write(self._id(run), WriteBatch(notes=[(time.time(), text)]))

    def edit_note(self, run: str | int | RunRecord, note_id: int, text: str | None) -> None:
        """Replace the text of note ``note_id`` of the run, or delete it (``text=None``).

        Raises:
            NoteNotFoundError: the run has no note with that id.
        """
        if text is not None:
            check_note(text)
        self.write(self._id(run), WriteBatch(note_edits={int(note_id): text}))

    def add_tags(self, run: str | int | RunRecord, *tags: str) -> None:
        self.write(self._id(run), WriteBatch(tags_add={check_tag(t) for t in tags}))

    def remove_tags(self, run: str | int | RunRecord, *tags: str) -> None:
        self.write(self._id(run), WriteBatch(tags_remove={check_text(t, "tag") for t in tags}))

    def set_params(self, run: str | int | RunRecord, params: Mapping[str, Any]) -> None:
        self.write(self._id(run), WriteBatch(params=flatten_params(params)))

    def set_metric(
        self, run: str | int | RunRecord, key: str, value: float, *, unit: str | None = None
    ) -> None:
        """Set a summary value directly: a result obtained after the run (a manual validation
        score, an evaluation on another machine)."""
        check_key(key)
        if unit is not None:
            check_name(unit, "unit", "e.g. '%' or 'ms'")
        summary = {key: SummaryValue(coerce_metric(key, value), unit, time.time())}
        self.write(self._id(run), WriteBatch(summary=summary))

    def update_run(self, run: str | int | RunRecord, **columns: Any) -> None:
        """Change run columns such as ``name`` or ``experiment`` (a name, or None)."""
        check_run_columns(columns)
        if "status" in columns:
            columns["status"] = parse_status(columns["status"], terminal=True).value
        self.write(self._id(run), WriteBatch(update=dict(columns)))

    def delete_run(self, run: str | int | RunRecord) -> None:
        self.delete_runs([self._id(run)])

    def _id(self, run: str | int | RunRecord) -> str:
        """A run UUID from a reference, a ``RunRecord`` or a live ``Run`` handle."""
        if isinstance(run, str | int):
            return self.resolve_run(run)
        run_id = getattr(run, "id", None)
        if isinstance(run_id, str):
            return run_id
        raise InvalidValueError(f"expected a run (number, name, UUID or record), not {run!r}")


def parse_status(value: object, *, terminal: bool = False) -> RunStatus:
    """A ``RunStatus`` from its name; with ``terminal``, only a status a client may write."""
    try:
        status = RunStatus(value)
    except ValueError:
        names = ", ".join(s.value for s in RunStatus)
        raise InvalidValueError(f"unknown run status {value!r}; one of {names}") from None
    if terminal and (not status.is_terminal() or status is RunStatus.CRASHED):
        raise InvalidValueError(
            f"a run cannot be set to {status.value!r}: 'crashed' is worked out from the "
            "heartbeat; use finished, failed, interrupted or pruned"
        )
    return status


def check_note(text: object, what: str = "note") -> str:
    """A note is markdown text: not empty, no NUL characters or lone surrogates."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidValueError(f"a {what} needs some text, got {shorten(text)}")
    return check_text(text, what)


def check_run_columns(columns: Mapping[str, Any]) -> None:
    """Check the run columns a client may change (``update_run``), naming the bad one."""
    unknown = set(columns) - RUN_COLUMNS - {"experiment", "parent"}
    if unknown:
        raise InvalidValueError(f"cannot update run field(s): {', '.join(sorted(unknown))}")
    if "name" in columns:
        check_run_fields(name=columns["name"])
    if "kind" in columns:
        check_run_fields(kind=columns["kind"])
    if columns.get("experiment") is not None:
        check_run_fields(experiment=columns["experiment"])
    for column in ("error", "command", "cwd", "hostname", "git_commit", "git_branch"):
        if isinstance(columns.get(column), str):
            check_text(columns[column], f"run {column}")


def check_experiment_fields(fields: Mapping[str, Any]) -> None:
    """Check an experiment's name and texts (``create_experiment``, ``update_experiment``)."""
    unknown = set(fields) - {"name", "description", "hypothesis", "conclusion"}
    if unknown:
        raise InvalidValueError(f"cannot update experiment field(s): {', '.join(sorted(unknown))}")
    if "name" in fields:
        check_name(fields["name"], "experiment name", "the question the experiment answers")
    for what in ("description", "hypothesis", "conclusion"):
        if fields.get(what) is not None:
            check_text(fields[what], what)


def _names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def summarize(points: Points) -> dict[str, Any]:
    """The summary of one batch of points (in the order they were logged), in
    ``metric_summaries`` columns. The last point logged gives the value; min and max skip NaN."""
    values, steps, epochs, times = points.values, points.steps, points.epochs, points.times
    last = len(values) - 1
    row: dict[str, Any] = {
        "value": _nan_to_none(values[last]),
        "step": steps[last],
        "epoch": _nan_to_none(epochs[last]),
        "time": times[last],
        "count": len(values),
        "min_value": None,
        "min_step": None,
        "min_epoch": None,
        "max_value": None,
        "max_step": None,
        "max_epoch": None,
    }
    extremes = _extremes(values)
    if extremes is not None:
        lo, hi = extremes
        row.update(
            min_value=values[lo], min_step=steps[lo], min_epoch=_nan_to_none(epochs[lo]),
            max_value=values[hi], max_step=steps[hi], max_epoch=_nan_to_none(epochs[hi]),
        )  # fmt: skip
    return row


def _extremes(values: Sequence[float]) -> tuple[int, int] | None:
    """Positions of the first minimum and the first maximum, NaN skipped (None if all NaN)."""
    if not any(map(math.isnan, values)):  # the usual case, at C speed
        return values.index(min(values)), values.index(max(values))
    finite = [i for i, v in enumerate(values) if v == v]
    if not finite:
        return None
    return min(finite, key=values.__getitem__), max(finite, key=values.__getitem__)


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while building many objects that all stay alive (every
    run of a 10,000-run store with its params and summaries): each collection would walk them
    all again, a third of the time of a grouped runs table (benchmarks/bench_ui_groups.py).
    The collector is process-wide: concurrent callers may turn it back on early, which only
    costs them the saving."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
