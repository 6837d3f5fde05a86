"""Sweeps on SQL stores: ``SqlSweeps``, the sweep methods of ``SqlStore``.

How agents on many machines stay consistent through one database (docs/design.md, "Sweeps:
coordinated through the store"):

- **Compare-and-set on the sweep's version.** ``add_trial`` moves ``sweeps.version`` from the
  version its caller read to the next in one ``UPDATE ... WHERE version = :expected``; the row
  count says whether the caller's view was current. The UPDATE also locks the sweep row, so trial
  numbers are handed out one at a time without a unique-index race.
- **One lock order.** A transaction that locks the sweep row does so first; one that locks several
  trial rows locks them by number (``SELECT ... ORDER BY number FOR UPDATE``). No lock is held
  across user code: every method is one short transaction.
- **Leases.** A running trial belongs to ``worker`` while its heartbeats are fresh; whichever
  agent notices a stale one marks it crashed (``expire_trials``), and the worker finds out from
  ``heartbeat_trials``. ``claim_trial`` takes a queued trial with ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL (SQLite serializes writers with ``BEGIN IMMEDIATE``).
- **Retries never apply twice.** ``SqlStore._write`` retries a transaction whose connection was
  lost, which may come after the database committed it. Each call carries a token (``lease`` on
  the trials it adds, claims or expires; ``change`` on the sweep it changes), and a retry first
  looks for its own committed work.
- **The database's clock.** Lease times (``heartbeat_at``, the staleness cut-off) and the other
  sweep times are read from PostgreSQL's clock, so agents on machines whose clocks disagree do not
  expire each other's trials. (A SQLite store is on one machine.)
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from expbook.errors import (
    AmbiguousSweepError,
    InvalidValueError,
    RunNotFoundError,
    SweepExistsError,
    SweepNotFoundError,
    TrialNotFoundError,
)
from expbook.model import SpecVersion, SweepRecord, SweepState, TrialRecord, TrialState
from expbook.store.base import check_experiment_fields
from expbook.store.schema import experiments, runs, sweep_specs, sweep_trials, sweeps
from expbook.store.sqlrows import clean
from expbook.validation import check_name, shorten, text_problem

T = TypeVar("T")

TRIAL_FIELDS = frozenset(
    {"state", "run_id", "values", "pruned_step", "error", "ended_at", "started_at"}
)
"""What ``update_trial`` may change."""

_PG_NOW = sa.text("SELECT extract(epoch FROM clock_timestamp())")
_RUNNING = TrialState.RUNNING.value
_QUEUED = TrialState.QUEUED.value
_TRIAL_COLUMNS = [c for c in sweep_trials.c if c.name not in ("id", "sweep_id", "run_id")]


# --- values ------------------------------------------------------------------------------------


def json_data(value: Any, what: str) -> Any:
    """``value`` as plain JSON data every store holds (a copy), or InvalidValueError naming it."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(f"{what} {shorten(value)} is not JSON data: {exc}") from None
    problem = text_problem(text)
    if problem:
        raise InvalidValueError(f"{what} {shorten(value)}: {problem}")
    return json.loads(text)


def objective_values(values: Sequence[float | None] | None) -> list[float | None] | None:
    """Objective values as stored: floats or None (NaN, a metric never logged, becomes None)."""
    if values is None:
        return None
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidValueError(f"trial values {shorten(values)} must be a list of numbers")
    found: list[float | None] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float | None):
            raise InvalidValueError(f"trial value {shorten(value)} is not a number")
        number = None if value is None else float(value)
        found.append(None if number is None or number != number else number)
    return found


def sweep_state(value: object) -> SweepState:
    try:
        return SweepState(value)
    except ValueError:
        names = ", ".join(s.value for s in SweepState)
        raise InvalidValueError(f"unknown sweep state {value!r}; one of {names}") from None


def trial_state(value: object) -> TrialState:
    try:
        return TrialState(value)
    except ValueError:
        names = ", ".join(s.value for s in TrialState)
        raise InvalidValueError(f"unknown trial state {value!r}; one of {names}") from None


# --- rows --------------------------------------------------------------------------------------


def _sweep_select() -> sa.Select[Any]:
    return sa.select(sweeps, experiments.c.name.label("experiment_name")).select_from(
        sweeps.outerjoin(experiments, experiments.c.id == sweeps.c.experiment_id)
    )


def _sweep_record(row: Mapping[str, Any]) -> SweepRecord:
    return SweepRecord(
        id=row["uuid"],
        name=row["name"],
        state=SweepState(row["state"]),
        spec=row["spec"],
        version=row["version"],
        experiment=row["experiment_name"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        ended_at=row["ended_at"],
    )


def _trial_select(sweep_id: str) -> sa.Select[Any]:
    return (
        sa.select(
            *_TRIAL_COLUMNS,
            runs.c.uuid.label("run_uuid"),
            runs.c.number.label("run_number"),
        )
        .select_from(
            sweep_trials.join(sweeps, sweeps.c.id == sweep_trials.c.sweep_id).outerjoin(
                runs, runs.c.id == sweep_trials.c.run_id
            )
        )
        .where(sweeps.c.uuid == sweep_id)
        .order_by(sweep_trials.c.number)
    )


def _trial_record(sweep_id: str, row: Mapping[str, Any]) -> TrialRecord:
    values = row["values"]
    return TrialRecord(
        sweep_id=sweep_id,
        number=row["number"],
        config=row["config"],
        repeat=row["repeat"],
        config_key=row["config_key"],
        params=row["params"],
        state=TrialState(row["state"]),
        attempt=row["attempt"],
        run_id=row["run_uuid"],
        run_number=row["run_number"],
        worker=row["worker"],
        heartbeat_at=row["heartbeat_at"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        values=None if values is None else tuple(values),
        pruned_step=row["pruned_step"],
        error=row["error"],
    )


def _trials(connection: Connection, sweep_id: str, where: Any = None) -> list[TrialRecord]:
    statement = _trial_select(sweep_id)
    if where is not None:
        statement = statement.where(where)
    rows = connection.execute(statement).mappings()
    return [_trial_record(sweep_id, row) for row in rows]


def _sweep_pk(connection: Connection, sweep_id: str, *, lock: bool = False) -> int:
    """The sweep's integer key (locked for this transaction with ``lock``)."""
    statement = sa.select(sweeps.c.id).where(sweeps.c.uuid == sweep_id)
    if lock:
        statement = statement.with_for_update()
    pk = connection.scalar(statement)
    if pk is None:
        raise SweepNotFoundError(f"no sweep with UUID {sweep_id!r} (was it deleted?)")
    return pk


def _next(connection: Connection, sweep_pk: int) -> tuple[int, int]:
    """The sweep's next trial number and next configuration number, from 0."""
    top = sa.select(
        sa.func.coalesce(sa.func.max(sweep_trials.c.number), -1) + 1,
        sa.func.coalesce(sa.func.max(sweep_trials.c.config), -1) + 1,
    ).where(sweep_trials.c.sweep_id == sweep_pk)
    number, config = connection.execute(top).one()
    return number, config


def _run_of(connection: Connection, trial: Mapping[str, Any]) -> dict[str, Any]:
    """A trial row (from RETURNING) with its run's UUID and number, as ``_trial_select``
    gives them."""
    found = {**trial, "run_uuid": None, "run_number": None}
    if trial["run_id"] is not None:
        statement = sa.select(runs.c.uuid, runs.c.number).where(runs.c.id == trial["run_id"])
        found["run_uuid"], found["run_number"] = connection.execute(statement).one()
    return found


def _bump(sweep_pk: int, now: Any, token: str) -> sa.Update:
    return (
        sweeps.update()
        .where(sweeps.c.id == sweep_pk)
        .values(version=sweeps.c.version + 1, updated_at=now, change=token)
    )


def _crash_message(worker: str | None) -> str:
    who = f"agent {worker}" if worker else "its agent"
    return f"{who} stopped sending heartbeats"


# --- the store methods -------------------------------------------------------------------------


class SqlSweeps:
    """The sweep methods of the Store contract, for ``SqlStore`` (which provides ``_write``,
    ``_query``, ``_insert``, ``_experiment_id``, ``_run_pk`` and ``dialect``)."""

    dialect: str
    _write: Callable[..., Any]
    _query: Callable[..., Any]
    _insert: Callable[[sa.Table], Any]
    _experiment_id: Callable[[Connection, str], int]
    _run_pk: Callable[[Connection, str], int]

    def _sweep_write(self, action: Callable[[Connection, bool], T]) -> T:
        """``_write`` for sweep methods: ``action(connection, retried)``; ``retried`` is true
        from the second attempt on, when an earlier attempt may have committed."""
        attempts = 0

        def attempt(connection: Connection) -> T:
            nonlocal attempts
            attempts += 1
            return action(connection, attempts > 1)

        return self._write(attempt)

    def _now(self) -> Any:
        """Now: on PostgreSQL, the database's clock at the start of the transaction (an SQL
        expression, so reading it costs no round trip); on SQLite, this machine's."""
        if self.dialect == "postgresql":
            return sa.cast(sa.extract("epoch", sa.func.now()), sa.Double())
        return time.time()

    def _locked(self, statement: sa.Select[Any]) -> sa.Select[Any]:
        """``statement`` taking row locks on PostgreSQL (SQLite's writer holds the file)."""
        return statement.with_for_update() if self.dialect == "postgresql" else statement

    # --- sweeps --------------------------------------------------------------------------------

    def create_sweep(
        self, name: str, spec: Mapping[str, Any], *, experiment: str | None = None
    ) -> SweepRecord:
        check_name(name, "sweep name", "a one-line label such as 'gru-hidden-size'")
        if not isinstance(spec, Mapping):
            raise InvalidValueError(f"a sweep spec is a mapping, not {shorten(spec)}")
        data = json_data(dict(spec), "sweep spec")
        if experiment is not None:
            check_experiment_fields({"name": experiment})
        token = uuid.uuid4().hex

        def create(connection: Connection, retried: bool) -> None:
            now = self._now()
            experiment_pk = self._experiment_id(connection, experiment) if experiment else None
            inserted = connection.scalar(
                self._insert(sweeps)
                .values(uuid=token, name=name, experiment_id=experiment_pk, spec=data,
                        state=SweepState.RUNNING.value, version=0, change=token,
                        created_at=now, updated_at=now)
                .on_conflict_do_nothing()
                .returning(sweeps.c.id)
            )  # fmt: skip
            if inserted is not None:
                return
            holder = connection.scalar(sa.select(sweeps.c.uuid).where(sweeps.c.name == name))
            if not (retried and holder == token):
                raise SweepExistsError(f"a sweep named {name!r} exists already")

        self._sweep_write(create)
        return self.get_sweep(token)

    def get_sweep(self, ref: str) -> SweepRecord:
        text = str(ref).strip()
        if not text or text_problem(text):
            raise SweepNotFoundError(f"no sweep matches {shorten(ref)}")

        def read(connection: Connection) -> list[Any]:
            found = connection.execute(_sweep_select().where(sweeps.c.name == text)).mappings()
            rows = list(found)
            lowered = text.lower()
            if not rows and all(c in "0123456789abcdef" for c in lowered):
                prefix = _sweep_select().where(sweeps.c.uuid.like(lowered + "%"))
                rows = list(connection.execute(prefix.order_by(sweeps.c.id).limit(6)).mappings())
            return rows

        rows = self._query(read)
        if len(rows) == 1:
            return _sweep_record(rows[0])
        if not rows:
            raise SweepNotFoundError(
                f"no sweep matches {text!r} (use its name or a prefix of its UUID; "
                "'expbook sweep ls' lists them)"
            )
        listed = ", ".join(f"{row['name']} ({row['uuid'][:8]})" for row in rows[:5])
        raise AmbiguousSweepError(f"{text!r} matches several sweeps: {listed}; use its name")

    def list_sweeps(self) -> list[SweepRecord]:
        statement = _sweep_select().order_by(sweeps.c.id)

        def read(connection: Connection) -> list[SweepRecord]:
            return [_sweep_record(row) for row in connection.execute(statement).mappings()]

        return self._query(read)

    def update_sweep(
        self,
        sweep_id: str,
        *,
        spec: Mapping[str, Any] | None = None,
        state: str | None = None,
        expected_version: int | None = None,
    ) -> SweepRecord | None:
        data = None if spec is None else json_data(dict(spec), "sweep spec")
        new_state = None if state is None else sweep_state(state)
        token = uuid.uuid4().hex

        def update(connection: Connection, retried: bool) -> SweepRecord | None:
            now = self._now()
            values: dict[str, Any] = {}
            if data is not None:
                values["spec"] = data
            if new_state is SweepState.RUNNING:
                values.update(state=new_state.value, ended_at=None)
            elif new_state is not None:
                was_running = sweeps.c.state == SweepState.RUNNING.value
                ended = sa.case((was_running, now), else_=sweeps.c.ended_at)
                values.update(state=new_state.value, ended_at=ended)
            condition = sweeps.c.uuid == sweep_id
            if expected_version is not None:
                condition &= sweeps.c.version == expected_version
            before = None
            if data is not None:  # the spec it replaces, read under the sweep row's lock
                locked = self._locked(
                    sa.select(sweeps.c.id, sweeps.c.version, sweeps.c.spec).where(condition)
                )
                before = connection.execute(locked).first()
            changed = connection.execute(
                sweeps.update()
                .where(condition)
                .values(version=sweeps.c.version + 1, updated_at=now, change=token, **values)
            ).rowcount
            if changed and before is not None and before.spec != data:
                connection.execute(
                    sweep_specs.insert().values(
                        sweep_id=before.id, version=before.version, replaced_at=now,
                        spec=before.spec,
                    )
                )  # fmt: skip
            found = connection.execute(_sweep_select().where(sweeps.c.uuid == sweep_id)).mappings()
            row = found.first()
            if row is None:
                raise SweepNotFoundError(f"no sweep with UUID {sweep_id!r} (was it deleted?)")
            if changed or (retried and row["change"] == token):
                return _sweep_record(row)
            return None

        return self._sweep_write(update)

    def sweep_history(self, sweep_id: str) -> list[SpecVersion]:
        def read(connection: Connection) -> list[SpecVersion]:
            pk = _sweep_pk(connection, sweep_id)
            rows = connection.execute(
                sa.select(sweep_specs.c.version, sweep_specs.c.replaced_at, sweep_specs.c.spec)
                .where(sweep_specs.c.sweep_id == pk)
                .order_by(sweep_specs.c.version)
            )
            return [SpecVersion(row.version, row.replaced_at, row.spec) for row in rows]

        return self._query(read)

    def delete_sweep(self, sweep_id: str) -> None:
        def delete(connection: Connection, retried: bool) -> None:
            deleted = connection.execute(sweeps.delete().where(sweeps.c.uuid == sweep_id))
            if not deleted.rowcount and not retried:
                raise SweepNotFoundError(f"no sweep with UUID {sweep_id!r}")

        self._sweep_write(delete)

    # --- trials --------------------------------------------------------------------------------

    def list_trials(self, sweep_id: str) -> list[TrialRecord]:
        def read(connection: Connection) -> list[TrialRecord]:
            found = _trials(connection, sweep_id)
            if not found:
                _sweep_pk(connection, sweep_id)  # raises when there is no such sweep
            return found

        return self._query(read)

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
        row = self._new_trial(params, config_key, config, repeat, worker, state, values)
        token = uuid.uuid4().hex

        def add(connection: Connection, retried: bool) -> TrialRecord | None:
            if retried:
                mine = _trials(connection, sweep_id, sweep_trials.c.lease == token)
                if mine:
                    return mine[0]
            now = self._now()
            sweep_pk = connection.scalar(
                sweeps.update()
                .where(
                    sweeps.c.uuid == sweep_id,
                    sweeps.c.version == expected_version,
                    sweeps.c.state == SweepState.RUNNING.value,
                )
                .values(version=sweeps.c.version + 1, updated_at=now, change=token)
                .returning(sweeps.c.id)
            )
            if sweep_pk is None:
                _sweep_pk(connection, sweep_id)  # raises when the sweep is gone
                return None
            return self._insert_trial(connection, sweep_id, sweep_pk, row, token, run_id)

        return self._sweep_write(add)

    @staticmethod
    def _new_trial(
        params: Mapping[str, Any],
        config_key: str,
        config: int | None,
        repeat: int,
        worker: str | None,
        state: TrialState,
        values: Sequence[float | None] | None,
    ) -> dict[str, Any]:
        """The columns of a new trial that do not depend on the transaction (checked)."""
        found = trial_state(state)
        if found is TrialState.RUNNING and not worker:
            raise InvalidValueError("a running trial needs the worker that runs it")
        if not isinstance(params, Mapping):
            raise InvalidValueError(f"trial params {shorten(params)} must be a mapping")
        if not isinstance(config_key, str) or text_problem(config_key):
            raise InvalidValueError(f"invalid config key {shorten(config_key)}")
        for what, number in (("config", config), ("repeat", repeat)):
            if number is not None and (not isinstance(number, int) or number < 0):
                raise InvalidValueError(f"trial {what} {shorten(number)} is not a number >= 0")
        if worker is not None:
            check_name(worker, "worker name", "e.g. the agent's host:pid")
        return {
            "params": json_data(dict(params), "trial params"),
            "config_key": config_key,
            "config": config,
            "repeat": repeat,
            "state": found.value,
            "worker": None if found is TrialState.QUEUED else worker,
            "values": objective_values(values),
        }

    def _insert_trial(
        self,
        connection: Connection,
        sweep_id: str,
        sweep_pk: int,
        row: dict[str, Any],
        token: str,
        run_id: str | None,
    ) -> TrialRecord:
        """Insert a trial into a sweep whose row this transaction has locked."""
        now = self._now()
        state = TrialState(row["state"])
        started = now if state is TrialState.RUNNING else None
        ended = now if state.is_finished() else None
        if run_id is not None:
            statement = sa.select(runs.c.id, runs.c.started_at, runs.c.ended_at)
            run = connection.execute(statement.where(runs.c.uuid == run_id)).first()
            if run is None:
                raise RunNotFoundError(f"run {run_id} does not exist (was it deleted?)")
            if state.is_finished():  # an existing run attached: its own times
                started, ended = run.started_at, run.ended_at if run.ended_at else now
        number, next_config = _next(connection, sweep_pk)
        columns = {**row, "config": next_config if row["config"] is None else row["config"]}
        inserted = connection.execute(
            sweep_trials.insert()
            .values(
                **columns,
                sweep_id=sweep_pk,
                number=number,
                attempt=1,
                run_id=None if run_id is None else run.id,
                lease=token,
                heartbeat_at=now if state is TrialState.RUNNING else None,
                created_at=now,
                started_at=started,
                ended_at=ended,
            )
            .returning(*sweep_trials.c)
        ).mappings().one()  # fmt: skip
        return _trial_record(sweep_id, _run_of(connection, inserted))

    def claim_trial(self, sweep_id: str, worker: str) -> TrialRecord | None:
        check_name(worker, "worker name", "e.g. the agent's host:pid")
        token = uuid.uuid4().hex

        def claim(connection: Connection, retried: bool) -> TrialRecord | None:
            if retried:
                mine = _trials(connection, sweep_id, sweep_trials.c.lease == token)
                if mine:
                    return mine[0]
            oldest = (
                sa.select(sweep_trials.c.id)
                .join(sweeps, sweeps.c.id == sweep_trials.c.sweep_id)
                .where(
                    sweeps.c.uuid == sweep_id,
                    sweeps.c.state == SweepState.RUNNING.value,
                    sweep_trials.c.state == _QUEUED,
                )
                .order_by(sweep_trials.c.number)
                .limit(1)
            )
            if self.dialect == "postgresql":  # other claimers skip it; the sweep row stays free
                oldest = oldest.with_for_update(of=sweep_trials, skip_locked=True)
            trial_pk = connection.scalar(oldest)
            if trial_pk is None:
                _sweep_pk(connection, sweep_id)  # raises when the sweep is gone
                return None
            now = self._now()
            claimed = connection.execute(
                sweep_trials.update()
                .where(sweep_trials.c.id == trial_pk, sweep_trials.c.state == _QUEUED)
                .values(state=_RUNNING, worker=worker, lease=token, heartbeat_at=now,
                        started_at=now)
                .returning(*sweep_trials.c)
            ).mappings().first()  # fmt: skip
            if claimed is None:  # cannot happen: the row is locked (or SQLite's file is)
                return None
            return _trial_record(sweep_id, _run_of(connection, claimed))

        return self._sweep_write(claim)

    def heartbeat_trials(self, sweep_id: str, numbers: Sequence[int], worker: str) -> set[int]:
        wanted = sorted({int(n) for n in numbers})
        if not wanted:
            return set()

        def beat(connection: Connection, retried: bool) -> set[int]:
            owner = sa.select(sweeps.c.id).where(sweeps.c.uuid == sweep_id).scalar_subquery()
            held = (
                sa.select(sweep_trials.c.id)
                .where(
                    sweep_trials.c.sweep_id == owner,
                    sweep_trials.c.number.in_(wanted),
                    sweep_trials.c.state == _RUNNING,
                    sweep_trials.c.worker == worker,
                )
                .order_by(sweep_trials.c.number)
            )
            if self.dialect == "postgresql":  # locked by number (see the module docstring)
                held = held.with_for_update(of=sweep_trials)
            renewed = connection.execute(
                sweep_trials.update()
                .where(sweep_trials.c.id.in_(held.scalar_subquery()))
                .values(heartbeat_at=self._now())
                .returning(sweep_trials.c.number)
            )
            return set(renewed.scalars())

        return self._sweep_write(beat)

    def update_trial(
        self, sweep_id: str, number: int, *, worker: str | None, **fields: Any
    ) -> bool:
        values = self._trial_changes(fields)
        run_id = values.pop("run_id", ...)
        automatic_end = "state" in values and "ended_at" not in fields

        def update(connection: Connection, retried: bool) -> bool:
            changes = dict(values)
            if run_id is not ...:
                changes["run_id"] = None if run_id is None else self._run_pk(connection, run_id)
            if automatic_end and TrialState(changes["state"]).is_finished():
                changes["ended_at"] = self._now()
            owner = sa.select(sweeps.c.id).where(sweeps.c.uuid == sweep_id).scalar_subquery()
            condition = (sweep_trials.c.sweep_id == owner) & (sweep_trials.c.number == number)
            if worker is not None:
                condition &= (sweep_trials.c.state == _RUNNING) & (sweep_trials.c.worker == worker)
            if connection.execute(
                sweep_trials.update().where(condition).values(**changes)
            ).rowcount:
                return True
            if worker is None:
                _sweep_pk(connection, sweep_id)
                raise TrialNotFoundError(f"the sweep has no trial {number}")
            return retried and self._already(connection, owner, number, worker, changes)

        return self._sweep_write(update)

    @staticmethod
    def _trial_changes(fields: Mapping[str, Any]) -> dict[str, Any]:
        """``update_trial``'s fields as columns (checked; ``run_id`` still a UUID)."""
        unknown = set(fields) - TRIAL_FIELDS
        if unknown:
            raise InvalidValueError(f"cannot update trial field(s): {', '.join(sorted(unknown))}")
        values = dict(fields)
        if "state" in values:
            state = trial_state(values["state"])
            values["state"] = state.value
            if state is TrialState.QUEUED:  # handed back: the next claim leases it afresh
                values.update(worker=None, lease=None, heartbeat_at=None, started_at=None)
        if "values" in values:
            values["values"] = objective_values(values["values"])
        if values.get("error") is not None:
            values["error"] = clean(str(values["error"]))
        for column in ("ended_at", "started_at"):
            if values.get(column) is not None:
                values[column] = float(values[column])
        if values.get("pruned_step") is not None:
            values["pruned_step"] = int(values["pruned_step"])
        return values

    @staticmethod
    def _already(
        connection: Connection, owner: Any, number: int, worker: str, changes: dict[str, Any]
    ) -> bool:
        """Whether a trial holds ``changes`` already, set by ``worker``: the committed first
        attempt of a retried ``update_trial`` (its own change ended the lease)."""
        row = connection.execute(
            sa.select(sweep_trials).where(
                sweep_trials.c.sweep_id == owner, sweep_trials.c.number == number
            )
        ).mappings().first()  # fmt: skip
        if row is None or row["worker"] != worker:
            return False
        compared = {k: v for k, v in changes.items() if k != "ended_at"}
        return all(row[key] == value for key, value in compared.items())

    def expire_trials(
        self, sweep_id: str, *, stale_after: float, max_attempts: int = 1
    ) -> list[TrialRecord]:
        def stale_at(connection: Connection) -> sa.ColumnElement[bool]:
            cutoff = self._now() - float(stale_after)
            return (sweep_trials.c.state == _RUNNING) & (sweep_trials.c.heartbeat_at < cutoff)

        def any_stale(connection: Connection) -> bool:
            return bool(_trials(connection, sweep_id, stale_at(connection)))

        if not self._query(any_stale):  # the usual case: no write, no lock
            return []
        token = uuid.uuid4().hex

        def expire(connection: Connection, retried: bool) -> list[TrialRecord]:
            crashed = sweep_trials.c.state == TrialState.CRASHED.value
            if retried:
                mine = _trials(connection, sweep_id, (sweep_trials.c.lease == token) & crashed)
                if mine:
                    return mine
            sweep_pk = _sweep_pk(connection, sweep_id, lock=True)  # the sweep row first
            stale = connection.execute(
                self._locked(
                    sa.select(sweep_trials)
                    .where(sweep_trials.c.sweep_id == sweep_pk, stale_at(connection))
                    .order_by(sweep_trials.c.number)
                )
            ).mappings().all()  # fmt: skip
            if not stale:
                return []  # another agent expired them first
            now = self._now()
            connection.execute(_bump(sweep_pk, now, token))
            for row in stale:
                self._crash(connection, sweep_pk, row, token, now, max_attempts)
            return _trials(connection, sweep_id, (sweep_trials.c.lease == token) & crashed)

        return self._sweep_write(expire)

    @staticmethod
    def _crash(
        connection: Connection,
        sweep_pk: int,
        row: Mapping[str, Any],
        token: str,
        now: Any,
        max_attempts: int,
    ) -> None:
        """Mark one stale trial crashed; queue its next attempt if it has one left."""
        connection.execute(
            sweep_trials.update()
            .where(sweep_trials.c.id == row["id"])
            .values(state=TrialState.CRASHED.value, ended_at=now, lease=token,
                    error=_crash_message(row["worker"]))
        )  # fmt: skip
        if row["attempt"] >= max_attempts:
            return
        copied = ("params", "config", "repeat", "config_key")
        connection.execute(
            sweep_trials.insert().values(
                **{column: row[column] for column in copied},
                sweep_id=sweep_pk,
                number=_next(connection, sweep_pk)[0],
                state=_QUEUED,
                attempt=row["attempt"] + 1,
                created_at=now,
            )
        )
