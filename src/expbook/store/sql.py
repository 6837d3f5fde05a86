"""``SqlStore``: the Store contract on SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from expbook.errors import (
    ExperimentNotFoundError,
    InvalidValueError,
    NoteNotFoundError,
    RunNotFoundError,
    StoreError,
    StoreRefusedError,
)
from expbook.locations import default_artifacts
from expbook.model import (
    ArtifactRecord,
    ExperimentRecord,
    MetricSummary,
    Note,
    OutputChunk,
    RunList,
    RunRecord,
    RunStatus,
    Series,
)
from expbook.query import parse_filter, parse_sort
from expbook.store import chunks as chunk_codec
from expbook.store import migrate
from expbook.store.base import (
    KeyCounts,
    RunQuery,
    RunSpec,
    Store,
    WriteBatch,
    check_experiment_fields,
    check_tag,
    iter_chunks,
    summarize,
)
from expbook.store.chunks import ChunkPlan, ChunkStack, Points
from expbook.store.engine import (
    RETRY_SECONDS,
    FileGuard,
    display_url,
    make_engine,
    retrying,
    store_error,
    transaction,
)
from expbook.store.schema import (
    applied_writes,
    artifacts,
    attachments,
    chunks,
    experiments,
    metric_summaries,
    notes,
    outputs,
    params,
    runs,
    store_settings,
    tags,
)
from expbook.store.sqlquery import SqlCompiler, status_expr
from expbook.store.sqlrows import (
    CHUNK_COLUMNS,
    check_metric_exists,
    clean,
    output_row,
    reason,
    resolve_reference,
    run_record,
    step_range,
    summary,
    summary_row,
)
from expbook.store.sqlsweeps import SqlSweeps
from expbook.store.sqltokens import SqlTokens
from expbook.validation import check_run_fields, check_text, param_columns, text_problem

_IN_BATCH = 5000


def _tuples(connection: Connection, statement: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """The rows as the driver gives them, without a SQLAlchemy Row each (for columns that need
    no conversion: numbers and text): a third of reading 70,000 rows."""
    result = connection.execute(statement)
    try:
        return result.cursor.fetchall()  # type: ignore[union-attr]
    finally:
        result.close()


KEEP_APPLIED = 100
"""Write ids kept per run (``applied_writes``): a batch retried after this many other writes to
its run were applied could be applied twice. The run writer retries one batch alone."""
PRUNE_EVERY = 64
"""Prune a run's write ids when the new record's id is a multiple of this."""
_parent = runs.alias("parent")


class SqlStore(SqlTokens, SqlSweeps, Store):
    """A store in a SQLite file or a PostgreSQL database.

    Args:
        url: a SQLAlchemy URL (``sqlite:///path``, ``postgresql+psycopg://...``); use
            ``expbook.open_store`` to pass paths and environment defaults.
        auto_upgrade: upgrade an older schema on open. Default: yes for SQLite, no for
            PostgreSQL (see ``expbook.store.migrate``).
    """

    def __init__(self, url: str, *, auto_upgrade: bool | None = None) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        if auto_upgrade is None:
            auto_upgrade = self.dialect == "sqlite"
        try:
            migrate.ensure_schema(self.engine, auto_upgrade=auto_upgrade)
        except sa.exc.DBAPIError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open store {display_url(url)}: {reason(exc)}") from exc
        except Exception:
            self.engine.dispose()
            raise
        # Open chunks this process is filling, per (run UUID, key). Keyed by UUID, not the
        # integer key: a deleted run's integer key can be handed to a new run.
        self._stacks: dict[tuple[str, str], ChunkStack] = {}
        self._stacks_lock = threading.Lock()
        self._record_statement: Any = None  # see _record_write
        self._file = FileGuard(self.engine)

    def __repr__(self) -> str:
        return f"SqlStore({display_url(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def after_fork(self) -> None:
        """In a forked child: drop the parent's connections (without closing them: they are
        the parent's) and the parent's half-filled chunks."""
        self.engine.dispose(close=False)
        self._stacks = {}
        self._stacks_lock = threading.Lock()

    def schema_version(self) -> str | None:
        return self._query(migrate.current_version)

    # --- transactions ---------------------------------------------------------------------------

    def _read(self):  # type: ignore[no-untyped-def]
        return transaction(self.engine, write=False)

    def _write(self, action, timeout: float | None = None):  # type: ignore[no-untyped-def]
        """Run ``action(connection)`` in a write transaction, retrying transient errors.

        Raises:
            StoreUnavailableError: still busy or unreachable after ``timeout`` (or a full disk,
                a read-only server...): the same write can succeed later.
            StoreRefusedError: the database refused the change.
            StoreReplacedError: the SQLite file was deleted or replaced while open.
        """

        def attempt():  # type: ignore[no-untyped-def]
            self._file.check(self.engine)  # before connecting: never re-create a deleted file
            with transaction(self.engine, write=True) as connection:
                return action(connection)

        try:
            return retrying(attempt, deadline=RETRY_SECONDS if timeout is None else timeout)
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
            raise store_error(self.url, exc) from exc
        except sa.exc.StatementError as exc:  # a value the driver cannot send
            message = f"store {display_url(self.url)}: {exc.orig}"
            raise StoreRefusedError(message, str(exc.orig)) from exc

    def _query(self, action):  # type: ignore[no-untyped-def]
        def attempt():  # type: ignore[no-untyped-def]
            with self._read() as connection:
                return action(connection)

        try:
            return retrying(attempt)
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"store {display_url(self.url)}: {reason(exc)}") from exc

    def _insert(self, table: sa.Table):  # type: ignore[no-untyped-def]
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    # --- creating runs --------------------------------------------------------------------------

    def create_run(self, spec: RunSpec) -> RunRecord:
        check_run_fields(
            name=spec.name, kind=spec.kind, tags=spec.tags, experiment=spec.experiment
        )
        run_uuid = spec.id or uuid.uuid4().hex
        tag_set = sorted({check_tag(t) for t in spec.tags})

        def create(connection: Connection) -> RunRecord | None:
            # Created already: by another process given the same ``spec.id``, or by an earlier
            # attempt of this call whose COMMIT's answer was lost. Read it after the transaction.
            existing = connection.scalar(sa.select(runs.c.id).where(runs.c.uuid == run_uuid))
            if existing is not None:
                return None
            experiment_id = (
                self._experiment_id(connection, spec.experiment) if spec.experiment else None
            )
            parent_pk, parent_number = (
                self._parent(connection, spec.parent) if spec.parent else (None, None)
            )
            number = connection.scalar(sa.select(sa.func.coalesce(sa.func.max(runs.c.number), 0)))
            number += 1
            name = spec.name or "run"
            pk = connection.execute(
                runs.insert()
                .values(
                    uuid=run_uuid,
                    number=number,
                    name=name,
                    experiment_id=experiment_id,
                    parent_id=parent_pk,
                    kind=spec.kind,
                    status=RunStatus.RUNNING.value,
                    started_at=spec.started_at,
                    heartbeat_at=spec.started_at,
                    heartbeat_interval=spec.heartbeat_interval,
                    command=list(spec.command),
                    cwd=spec.cwd,
                    pid=spec.pid,
                    hostname=spec.hostname,
                )
                .returning(runs.c.id)
            ).scalar_one()
            self._write_params(connection, pk, dict(spec.params))
            if tag_set:
                connection.execute(tags.insert(), [{"run_id": pk, "tag": t} for t in tag_set])
            return RunRecord(
                id=run_uuid,
                number=number,
                name=name,
                status=RunStatus.RUNNING,
                started_at=spec.started_at,
                experiment=spec.experiment,
                kind=spec.kind,
                parent_id=spec.parent,
                parent_number=parent_number,
                heartbeat_at=spec.started_at,
                command=tuple(spec.command),
                cwd=spec.cwd,
                pid=spec.pid,
                hostname=spec.hostname,
                params=dict(spec.params),
                tags=tuple(tag_set),
            )

        def create_retrying_numbers() -> RunRecord:
            # Two PostgreSQL clients can pick the same number (or create the same UUID); the
            # unique indexes tell us, and the next attempt sees the other's run.
            for _ in range(50):
                try:
                    created = self._write(create)
                except StoreError as exc:
                    if not isinstance(exc.__cause__, sa.exc.IntegrityError):
                        raise
                    continue
                return created if created is not None else self.run(run_uuid)
            raise StoreError("could not allocate a run number after 50 attempts")

        return create_retrying_numbers()

    def _parent(self, connection: Connection, parent: str) -> tuple[int, int]:
        row = connection.execute(
            sa.select(runs.c.id, runs.c.number).where(runs.c.uuid == parent)
        ).first()
        if row is None:
            raise RunNotFoundError(f"parent run {parent!r} does not exist")
        return row[0], row[1]

    @staticmethod
    def _edit_note(connection: Connection, pk: int, note_id: int, text: str | None) -> None:
        mine = (notes.c.id == note_id) & (notes.c.run_id == pk)
        if text is None:
            changed = connection.execute(notes.delete().where(mine)).rowcount
        else:
            changed = connection.execute(notes.update().where(mine).values(text=text)).rowcount
        if not changed:
            raise NoteNotFoundError(f"the run has no note {note_id}")

    def _experiment_id(self, connection: Connection, name: str) -> int:
        existing = connection.scalar(sa.select(experiments.c.id).where(experiments.c.name == name))
        if existing is not None:
            return existing
        now = time.time()
        connection.execute(
            self._insert(experiments)
            .values(name=name, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return connection.scalar(sa.select(experiments.c.id).where(experiments.c.name == name))

    # --- writing --------------------------------------------------------------------------------

    def write(
        self, run_id: str, batch: WriteBatch, *, timeout: float | None = None,
        deferred: bool = False,
    ) -> None:  # fmt: skip
        if batch.is_empty():
            return
        logged = {key: points for key, points in batch.points.items() if len(points)}
        for key, points in batch.replaced.items():  # the new series, then this batch's points
            whole = Points()
            whole.extend(points)
            if key in logged:
                whole.extend(logged[key])
            logged[key] = whole
        logged = {key: points for key, points in logged.items() if len(points)}
        summaries = {key: summarize(points) for key, points in logged.items()}
        ordered = {key: points.sorted() for key, points in logged.items()}
        done: list[tuple[ChunkStack, ChunkPlan, int | None]] = []
        batch_id = batch.batch_id or uuid.uuid4().hex
        applied_before = False

        def apply(connection: Connection) -> int:
            nonlocal applied_before
            pk = self._run_pk(connection, run_id)
            if not self._record_write(connection, pk, batch_id):
                # Applied already: an earlier attempt's COMMIT reached the database but its
                # answer was lost. ``done`` still holds that attempt's plans (the last attempt
                # to get past this line is the one that committed) unless it was another call.
                applied_before = True
                return pk
            done.clear()
            if batch.update:
                self._update_run(connection, pk, dict(batch.update))
            if batch.params:
                self._write_params(connection, pk, batch.params)
            self._write_tags(connection, pk, batch)
            if batch.notes:
                connection.execute(
                    notes.insert(),
                    [{"run_id": pk, "created_at": t, "text": text} for t, text in batch.notes],
                )
            for note_id, text in batch.note_edits.items():
                self._edit_note(connection, pk, note_id, text)
            if batch.replaced:
                self._drop_series(connection, pk, run_id, list(batch.replaced))
            rows = [{"run_id": pk, "key": k, "unit": None, **s} for k, s in summaries.items()]
            rows += [summary_row(pk, k, v) for k, v in batch.summary.items()]
            if rows:
                self._upsert_summaries(connection, rows)
            if ordered:
                done.extend(self._write_chunks(connection, pk, run_id, ordered))
            if batch.attachments:
                self._write_attachments(connection, pk, batch.attachments)
            if batch.artifacts:
                self._write_artifacts(connection, pk, batch.artifacts)
            if batch.output:
                connection.execute(outputs.insert(), [output_row(pk, o) for o in batch.output])
            if batch.heartbeat is not None:
                connection.execute(
                    runs.update().where(runs.c.id == pk).values(heartbeat_at=batch.heartbeat)
                )
            return pk

        try:
            self._write(apply, timeout)
        except RunNotFoundError:
            self._forget_stacks(run_id)
            raise
        with self._stacks_lock:
            if applied_before and not done:  # applied by an earlier call: plans unknown
                for key in ordered:  # its chunks stay as they are; the keys start new ones
                    self._stacks[(run_id, key)] = ChunkStack()
            for stack, plan, top_id in done:
                stack.commit(plan, top_id)
        status = batch.update.get("status")
        if status is not None and RunStatus(status).is_terminal():
            self._forget_stacks(run_id)

    def _record_write(self, connection: Connection, pk: int, batch_id: str) -> bool:
        """Record that this transaction applies write ``batch_id`` to run ``pk``; False when
        it was applied before. One INSERT, the first statement after the run's lookup: the
        record is the check, on every attempt (a later call retrying a batch whose write failed
        is a first attempt too). Every ``PRUNE_EVERY``-th record prunes the run's to the last
        ``KEEP_APPLIED``."""
        if self._record_statement is None:  # built once: the first attempt's cost stays small
            self._record_statement = (
                self._insert(applied_writes)
                .values(run_id=sa.bindparam("pk"), batch_id=sa.bindparam("batch_id"))
                .on_conflict_do_nothing(index_elements=["run_id", "batch_id"])
                .returning(applied_writes.c.id)
            )
        row = connection.execute(self._record_statement, {"pk": pk, "batch_id": batch_id}).first()
        if row is None:
            return False
        if row[0] % PRUNE_EVERY == 0:
            newest = (
                sa.select(applied_writes.c.id)
                .where(applied_writes.c.run_id == pk)
                .order_by(applied_writes.c.id.desc())
                .limit(KEEP_APPLIED)
            )
            connection.execute(
                applied_writes.delete().where(
                    applied_writes.c.run_id == pk,
                    applied_writes.c.id.not_in(newest),
                )
            )
        return True

    def _drop_series(self, connection: Connection, pk: int, run_id: str, keys: list[str]) -> None:
        """Remove the points and summaries of ``keys`` (a batch rewrites those series); their
        chunk stacks start afresh (a failed transaction only costs a chunk that stays small)."""
        for batch in iter_chunks(keys, _IN_BATCH):
            connection.execute(
                chunks.delete().where(chunks.c.run_id == pk, chunks.c.key.in_(batch))
            )
            connection.execute(
                metric_summaries.delete().where(
                    metric_summaries.c.run_id == pk, metric_summaries.c.key.in_(batch)
                )
            )
        with self._stacks_lock:
            for key in keys:
                self._stacks[(run_id, key)] = ChunkStack()

    def _forget_stacks(self, run_id: str) -> None:
        with self._stacks_lock:
            for stack_key in [k for k in self._stacks if k[0] == run_id]:
                del self._stacks[stack_key]

    def _run_pk(self, connection: Connection, run_id: str) -> int:
        """The run's integer key, looked up in this transaction (never cached: a deleted run's
        key can be reused by SQLite for the next run)."""
        pk = connection.scalar(sa.select(runs.c.id).where(runs.c.uuid == run_id))
        if pk is None:
            raise RunNotFoundError(f"run {run_id} does not exist (was it deleted?)")
        return pk

    def _update_run(self, connection: Connection, pk: int, values: dict[str, Any]) -> None:
        if "experiment" in values:
            name = values.pop("experiment")
            values["experiment_id"] = self._experiment_id(connection, name) if name else None
        if "parent" in values:
            parent = values.pop("parent")
            values["parent_id"] = self._parent(connection, parent)[0] if parent else None
        if "status" in values:
            values["status"] = RunStatus(values["status"]).value
        for column in ("error", "recording_error"):
            if values.get(column):
                values[column] = clean(values[column])
        if "name" in values and not (isinstance(values["name"], str) and values["name"].strip()):
            raise InvalidValueError(f"invalid run name {values['name']!r}")
        if values:
            connection.execute(runs.update().where(runs.c.id == pk).values(**values))

    def _write_params(self, connection: Connection, pk: int, values: dict[str, Any]) -> None:
        if not values:
            return
        rows = []
        for key, value in values.items():
            text, number, string = param_columns(value)
            rows.append(
                {
                    "run_id": pk,
                    "key": key,
                    "value_json": text,
                    "value_num": number,
                    "value_text": clean(string),
                }
            )
        statement = self._insert(params)
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={
                "value_json": statement.excluded.value_json,
                "value_num": statement.excluded.value_num,
                "value_text": statement.excluded.value_text,
            },
        )
        connection.execute(statement, rows)

    def _write_tags(self, connection: Connection, pk: int, batch: WriteBatch) -> None:
        if batch.tags_add:
            connection.execute(
                self._insert(tags).on_conflict_do_nothing(index_elements=["run_id", "tag"]),
                [{"run_id": pk, "tag": tag} for tag in sorted(batch.tags_add)],
            )
        if batch.tags_remove:
            connection.execute(
                tags.delete().where(tags.c.run_id == pk, tags.c.tag.in_(batch.tags_remove))
            )

    def _upsert_summaries(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        statement = self._insert(metric_summaries)
        new, old = statement.excluded, metric_summaries.c
        newer = new.time >= old.time

        # A value set directly (count 0) decides min/max only while the key has no logged
        # points; once it has, only points do. Between points the smaller min wins (NaN is
        # stored as NULL and never wins).
        lower = sa.or_(
            old.count == 0,
            sa.and_(new.count > 0, sa.or_(old.min_value.is_(None), new.min_value < old.min_value)),
        )
        higher = sa.or_(
            old.count == 0,
            sa.and_(new.count > 0, sa.or_(old.max_value.is_(None), new.max_value > old.max_value)),
        )

        def pick(condition: Any, column: str) -> Any:
            return sa.case((condition, new[column]), else_=old[column])

        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={
                **{c: pick(newer, c) for c in ("value", "step", "epoch", "time")},
                **{c: pick(lower, c) for c in ("min_value", "min_step", "min_epoch")},
                **{c: pick(higher, c) for c in ("max_value", "max_step", "max_epoch")},
                "count": old.count + new.count,
                "unit": sa.func.coalesce(new.unit, old.unit),
            },
        )
        connection.execute(statement, rows)

    def _write_chunks(
        self, connection: Connection, pk: int, run_id: str, ordered: dict[str, Points]
    ) -> list[tuple[ChunkStack, ChunkPlan, int | None]]:
        """Write every key's new points with at most one INSERT, one UPDATE and one DELETE
        statement (executemany), returning what to commit to each key's stack."""
        planned = []
        with self._stacks_lock:
            for key, points in ordered.items():
                stack = self._stacks.setdefault((run_id, key), ChunkStack())
                planned.append((key, stack, stack.plan(points)))
        inserts = [
            {"run_id": pk, "key": key, **chunk_codec.encode(piece)}
            for key, _, plan in planned
            for piece in plan.inserts
        ]
        ids: list[int] = []
        if inserts:
            statement = chunks.insert().returning(chunks.c.id, sort_by_parameter_order=True)
            ids = list(connection.execute(statement, inserts).scalars())
        updates = [
            {"chunk_id": plan.update.id, **chunk_codec.encode(plan.update.points)}
            for _, _, plan in planned
            if plan.update is not None
        ]
        if updates:
            statement = chunks.update().where(
                chunks.c.id == sa.bindparam("chunk_id"), chunks.c.run_id == pk
            )
            connection.execute(statement, updates)
        deletes = [row_id for _, _, plan in planned for row_id in plan.deletes]
        if deletes:
            connection.execute(
                chunks.delete().where(chunks.c.id.in_(deletes), chunks.c.run_id == pk)
            )
        done = []
        position = 0
        for _, stack, plan in planned:
            position += len(plan.inserts)
            top_id = plan.update.id if plan.update is not None else None
            if plan.update is None and plan.inserts:
                top_id = ids[position - 1]  # the last insert of this key
            done.append((stack, plan, top_id))
        return done

    def _write_artifacts(
        self, connection: Connection, pk: int, files: dict[str, ArtifactRecord]
    ) -> None:
        rows = [
            {"run_id": pk, "name": name, "sha256": file.sha256, "size": file.size,
             "logged_at": file.logged_at}
            for name, file in files.items()
        ]  # fmt: skip
        statement = self._insert(artifacts)
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "name"],
            set_={c: statement.excluded[c] for c in ("sha256", "size", "logged_at")},
        )
        connection.execute(statement, rows)

    def _write_attachments(self, connection: Connection, pk: int, files: dict[str, bytes]) -> None:
        rows = [
            {
                "run_id": pk,
                "name": name,
                "encoding": "zlib",
                "size": len(data),
                "data": zlib.compress(data, 6),
            }
            for name, data in files.items()
        ]
        statement = self._insert(attachments)
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "name"],
            set_={c: statement.excluded[c] for c in ("encoding", "size", "data")},
        )
        connection.execute(statement, rows)

    # --- reading runs ---------------------------------------------------------------------------

    def _run_filter(self, query: RunQuery, now: float) -> sa.ColumnElement[bool]:
        compiler = SqlCompiler(now, self.dialect)
        conditions = [compiler.filter(parse_filter(query.where))]
        if query.experiments:
            conditions.append(
                runs.c.experiment_id.in_(
                    sa.select(experiments.c.id).where(experiments.c.name.in_(query.experiments))
                )
            )
        if query.statuses:
            conditions.append(status_expr(now).in_([s.value for s in query.statuses]))
        if query.ids:
            conditions.append(runs.c.uuid.in_(query.ids))
        return sa.and_(*conditions)

    def find_runs(self, query: RunQuery) -> RunList:
        now = time.time()
        order = SqlCompiler(now, self.dialect).order_by(parse_sort(query.sort))
        statement = (
            sa.select(
                runs,
                status_expr(now).label("reported_status"),
                experiments.c.name.label("experiment_name"),
                _parent.c.uuid.label("parent_uuid"),
                _parent.c.number.label("parent_number"),
            )
            .select_from(
                runs.outerjoin(experiments, experiments.c.id == runs.c.experiment_id).outerjoin(
                    _parent, _parent.c.id == runs.c.parent_id
                )
            )
            .where(self._run_filter(query, now))
            .order_by(*order)
        )
        if query.limit is not None:
            statement = statement.limit(query.limit)
        if query.offset:
            statement = statement.offset(query.offset)

        def read(connection: Connection) -> RunList:
            rows = connection.execute(statement).mappings().all()
            pks = [row["id"] for row in rows]
            details = self._details(connection, pks)
            return RunList(run_record(row, *(d.get(row["id"]) for d in details)) for row in rows)

        return self._query(read)

    def find_run_values(
        self, query: RunQuery, params: Sequence[str] | None, metrics: Sequence[str] | None
    ) -> RunList:
        """As the base says, in four queries that select the runs by a subquery: no IN list of
        10,000 ids to bind, no JSON columns, only the summaries' values, the driver's tuples,
        each distinct param value decoded once (runs with an equal list or object param share
        one: read-only, as the records are) — for 10,021 runs under half of find_runs' time
        (benchmarks/bench_ui_groups.py)."""
        from types import MappingProxyType

        from expbook.store.schema import params as param_rows
        from expbook.store.sqlrows import nan

        now = time.time()
        chosen = self._run_filter(query, now)
        columns = [runs.c[name] for name in ("id", "uuid", "number", "name", "kind")]
        columns += [runs.c.started_at, runs.c.ended_at, status_expr(now), experiments.c.name]
        statement = (
            sa.select(*columns)
            .select_from(runs.outerjoin(experiments, experiments.c.id == runs.c.experiment_id))
            .where(chosen)
            .order_by(*SqlCompiler(now, self.dialect).order_by(parse_sort(query.sort)))
            .limit(query.limit)
            .offset(query.offset or None)
        )
        pks = sa.select(runs.c.id).where(chosen).scalar_subquery()
        read_params = (
            sa.select(param_rows.c.run_id, param_rows.c.key, param_rows.c.value_json)
            .where(param_rows.c.run_id.in_(pks))
            .order_by(param_rows.c.run_id, param_rows.c.key)
        )
        if params is not None:
            read_params = read_params.where(param_rows.c.key.in_(list(params)))
        summaries = metric_summaries.c
        read_metrics = sa.select(
            summaries.run_id, summaries.key, summaries.value, summaries.min_value,
            summaries.max_value,
        ).where(summaries.run_id.in_(pks))  # fmt: skip
        if metrics is not None:
            read_metrics = read_metrics.where(summaries.key.in_(list(metrics)))

        statuses = {status.value: status for status in RunStatus}  # 20x faster than calling it

        def read(connection: Connection) -> RunList:
            found = _tuples(connection, statement)
            values: dict[int, dict[str, Any]] = {}
            decoded: dict[str, Any] = {}  # the same few values recur: decoded once each
            for pk, key, text in _tuples(connection, read_params):
                if text not in decoded:
                    decoded[text] = json.loads(text)
                values.setdefault(pk, {})[key] = decoded[text]
            labels: dict[int, list[str]] = {}
            for pk, tag in _tuples(
                connection,
                sa.select(tags.c.run_id, tags.c.tag).where(tags.c.run_id.in_(pks))
                .order_by(tags.c.run_id, tags.c.tag),
            ):  # fmt: skip
                labels.setdefault(pk, []).append(tag)
            kept: dict[int, dict[str, MetricSummary]] = {}
            for pk, key, value, low, high in _tuples(connection, read_metrics):
                kept.setdefault(pk, {})[key] = MetricSummary(key, nan(value), min=low, max=high)
            return RunList(
                RunRecord(
                    id=uuid_, number=number, name=name, kind=kind, started_at=started,
                    ended_at=ended, status=statuses[status], experiment=experiment,
                    params=MappingProxyType(values.get(pk, {})),
                    tags=tuple(labels.get(pk, ())), metrics=MappingProxyType(kept.get(pk, {})),
                )
                for pk, uuid_, number, name, kind, started, ended, status, experiment in found
            )  # fmt: skip

        return self._query(read)

    def key_counts(self, query: RunQuery) -> KeyCounts:
        """As the base says, with three counting queries on the runs a subquery selects."""
        from expbook.store.schema import params as param_rows

        now = time.time()
        chosen = self._run_filter(query, now)
        pks = sa.select(runs.c.id).where(chosen).scalar_subquery()
        count = sa.select(sa.func.count()).select_from(runs).where(chosen)

        def per_key(table: sa.Table) -> sa.Select[Any]:
            rows = sa.select(table.c.key, sa.func.count()).where(table.c.run_id.in_(pks))
            return rows.group_by(table.c.key).order_by(table.c.key)

        def read(connection: Connection) -> KeyCounts:
            return KeyCounts(
                connection.scalar(count) or 0,
                dict(_tuples(connection, per_key(param_rows))),
                dict(_tuples(connection, per_key(metric_summaries))),
            )

        return self._query(read)

    def count_runs(self, query: RunQuery) -> int:
        now = time.time()
        statement = (
            sa.select(sa.func.count()).select_from(runs).where(self._run_filter(query, now))
        )
        return self._query(lambda connection: connection.scalar(statement))

    def _details(self, connection: Connection, pks: list[int]) -> tuple[dict[int, Any], ...]:
        param_map: dict[int, dict[str, Any]] = {}
        tag_map: dict[int, list[str]] = {}
        metric_map: dict[int, dict[str, MetricSummary]] = {}
        note_map: dict[int, list[Note]] = {}
        for batch in iter_chunks(pks, _IN_BATCH):
            for run_pk, key, text in connection.execute(
                sa.select(params.c.run_id, params.c.key, params.c.value_json)
                .where(params.c.run_id.in_(batch))
                .order_by(params.c.run_id, params.c.key)
            ):
                param_map.setdefault(run_pk, {})[key] = json.loads(text)
            for run_pk, tag in connection.execute(
                sa.select(tags.c.run_id, tags.c.tag)
                .where(tags.c.run_id.in_(batch))
                .order_by(tags.c.run_id, tags.c.tag)
            ):
                tag_map.setdefault(run_pk, []).append(tag)
            for row in connection.execute(
                sa.select(metric_summaries)
                .where(metric_summaries.c.run_id.in_(batch))
                .order_by(metric_summaries.c.run_id, metric_summaries.c.key)
            ).mappings():
                metric_map.setdefault(row["run_id"], {})[row["key"]] = summary(row)
            for row in connection.execute(
                sa.select(notes).where(notes.c.run_id.in_(batch)).order_by(notes.c.id)
            ).mappings():
                note = Note(row["id"], row["created_at"], row["text"])
                note_map.setdefault(row["run_id"], []).append(note)
        return param_map, tag_map, metric_map, note_map

    def resolve_run(self, ref: str | int) -> str:
        def resolve(connection: Connection) -> str:
            return resolve_reference(connection, ref)

        return self._query(resolve)

    # --- series ---------------------------------------------------------------------------------

    def get_series(
        self, run_id: str, key: str, *, step_min: int | None = None, step_max: int | None = None
    ) -> Series:
        def read(connection: Connection) -> list[Any]:
            pk = self._run_pk(connection, run_id)
            statement = sa.select(*CHUNK_COLUMNS).where(chunks.c.run_id == pk, chunks.c.key == key)
            if step_min is not None:
                statement = statement.where(chunks.c.step_max >= step_min)
            if step_max is not None:
                statement = statement.where(chunks.c.step_min <= step_max)
            # chunk ids follow the order points were logged: equal steps keep that order
            rows = connection.execute(statement.order_by(chunks.c.id)).all()
            if not rows:
                check_metric_exists(connection, pk, key)
            return rows

        points = chunk_codec.decode_rows(self._query(read))
        if step_min is not None or step_max is not None:
            points = step_range(points, step_min, step_max)
        return Series(run_id, key, points.steps, points.values, points.times, points.epochs)

    def iter_series(
        self, run_ids: Sequence[str], keys: Sequence[str] | None = None
    ) -> Iterator[Series]:
        ids = list(run_ids)
        for batch in iter_chunks(ids, 200):

            def read(connection: Connection, batch: Sequence[str] = batch) -> list[Any]:
                statement = (
                    sa.select(runs.c.uuid, chunks.c.key, *CHUNK_COLUMNS)
                    .join(runs, runs.c.id == chunks.c.run_id)
                    .where(runs.c.uuid.in_(batch))
                )
                if keys:
                    statement = statement.where(chunks.c.key.in_(list(keys)))
                return connection.execute(statement.order_by(chunks.c.id)).all()

            grouped: dict[tuple[str, str], list[Any]] = {}
            for run_uuid, key, *row in self._query(read):
                grouped.setdefault((run_uuid, key), []).append(row)
            order = {run_id: n for n, run_id in enumerate(batch)}
            for run_uuid, key in sorted(grouped, key=lambda rk: (order[rk[0]], rk[1])):
                points = chunk_codec.decode_rows(grouped[(run_uuid, key)])
                yield Series(
                    run_uuid, key, points.steps, points.values, points.times, points.epochs
                )

    def series_keys(self, run_id: str) -> list[str]:
        def read(connection: Connection) -> list[str]:
            pk = self._run_pk(connection, run_id)
            statement = (
                sa.select(chunks.c.key)
                .where(chunks.c.run_id == pk)
                .distinct()
                .order_by(chunks.c.key)
            )
            return list(connection.scalars(statement))

        return self._query(read)

    # --- attachments, deletion ------------------------------------------------------------------

    def get_attachment(self, run_id: str, name: str) -> bytes | None:
        def read(connection: Connection) -> Any:
            pk = self._run_pk(connection, run_id)
            return connection.execute(
                sa.select(attachments.c.encoding, attachments.c.data).where(
                    attachments.c.run_id == pk, attachments.c.name == name
                )
            ).first()

        row = self._query(read)
        if row is None:
            return None
        encoding, data = row
        return zlib.decompress(data) if encoding == "zlib" else bytes(data)

    def get_output(
        self, run_id: str, *, after: int = 0, last: int | None = None
    ) -> list[OutputChunk]:
        def read(connection: Connection) -> list[OutputChunk]:
            pk = self._run_pk(connection, run_id)
            statement = sa.select(
                outputs.c.id, outputs.c.stream, outputs.c.time, outputs.c.data
            ).where(outputs.c.run_id == pk, outputs.c.id > after)
            if last is None:
                rows = list(connection.execute(statement.order_by(outputs.c.id)))
            else:
                newest = statement.order_by(outputs.c.id.desc()).limit(max(0, last))
                rows = list(connection.execute(newest))[::-1]
            return [
                OutputChunk(row_id, stream, at, zlib.decompress(data).decode("utf-8", "replace"))
                for row_id, stream, at, data in rows
            ]

        return self._query(read)

    def list_attachments(self, run_id: str) -> dict[str, int]:
        def read(connection: Connection) -> dict[str, int]:
            pk = self._run_pk(connection, run_id)
            statement = (
                sa.select(attachments.c.name, attachments.c.size)
                .where(attachments.c.run_id == pk)
                .order_by(attachments.c.name)
            )
            return {name: size for name, size in connection.execute(statement)}

        return self._query(read)

    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        def read(connection: Connection) -> list[ArtifactRecord]:
            pk = self._run_pk(connection, run_id)
            statement = (
                sa.select(artifacts.c.name, artifacts.c.sha256, artifacts.c.size,
                          artifacts.c.logged_at)
                .where(artifacts.c.run_id == pk)
                .order_by(artifacts.c.name)
            )  # fmt: skip
            return [ArtifactRecord(*row) for row in connection.execute(statement)]

        return self._query(read)

    def artifact_references(self, hashes: Sequence[str]) -> set[str]:
        def read(connection: Connection) -> set[str]:
            found: set[str] = set()
            for batch in iter_chunks(list(hashes), _IN_BATCH):
                statement = sa.select(artifacts.c.sha256).where(artifacts.c.sha256.in_(batch))
                found.update(connection.scalars(statement.distinct()))
            return found

        return self._query(read)

    def get_setting(self, key: str) -> str | None:
        statement = sa.select(store_settings.c.value).where(store_settings.c.key == key)
        return self._query(lambda connection: connection.scalar(statement))

    def set_setting(self, key: str, value: str | None) -> None:
        check_text(key, "setting")
        if value is not None:
            check_text(value, f"setting {key}")

        def write(connection: Connection) -> None:
            connection.execute(store_settings.delete().where(store_settings.c.key == key))
            if value is not None:
                connection.execute(store_settings.insert().values(key=key, value=value))

        self._write(write)

    def default_artifact_location(self) -> str | None:
        return default_artifacts(self.url)

    def delete_runs(self, run_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(run_ids))
        held: set[str] = set()

        def delete(connection: Connection) -> int:
            count = 0
            held.clear()
            for batch in iter_chunks(ids, _IN_BATCH):
                owned = sa.select(runs.c.id).where(runs.c.uuid.in_(batch))
                held.update(
                    connection.scalars(
                        sa.select(artifacts.c.sha256).where(artifacts.c.run_id.in_(owned))
                    )
                )
                count += connection.execute(runs.delete().where(runs.c.uuid.in_(batch))).rowcount
            return count

        count = self._write(delete)
        for run_id in ids:
            self._forget_stacks(run_id)
        if held:
            try:
                self.remove_unreferenced_blobs(sorted(held))
            except StoreError as exc:
                raise StoreError(
                    f"{count} run(s) deleted, but their artifact files were not removed: {exc}"
                ) from exc
        return count

    # --- experiments ----------------------------------------------------------------------------

    def create_experiment(
        self, name: str, *, description: str | None = None, hypothesis: str | None = None
    ) -> ExperimentRecord:
        check_experiment_fields({"name": name, "description": description,
                                 "hypothesis": hypothesis})  # fmt: skip

        def create(connection: Connection) -> None:
            now = time.time()
            connection.execute(
                self._insert(experiments)
                .values(
                    name=name,
                    description=description,
                    hypothesis=hypothesis,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["name"])
            )

        self._write(create)
        return self.get_experiment(name)

    def _experiments(self, where: sa.ColumnElement[bool] | None) -> list[ExperimentRecord]:
        counts = (
            sa.select(sa.func.count())
            .where(runs.c.experiment_id == experiments.c.id)
            .scalar_subquery()
        )
        statement = sa.select(experiments, counts.label("run_count")).order_by(experiments.c.id)
        if where is not None:
            statement = statement.where(where)

        def read(connection: Connection) -> list[ExperimentRecord]:
            return [ExperimentRecord(**row) for row in connection.execute(statement).mappings()]

        return self._query(read)

    def get_experiment(self, name: str) -> ExperimentRecord:
        # text no store can hold names no experiment (and could not be sent in a query)
        found = [] if text_problem(name) else self._experiments(experiments.c.name == name)
        if not found:
            raise ExperimentNotFoundError(f"no experiment named {name!r}")
        return found[0]

    def list_experiments(self) -> list[ExperimentRecord]:
        return self._experiments(None)

    def update_experiment(self, name: str, /, **fields: str | None) -> ExperimentRecord:
        check_experiment_fields(fields)

        def update(connection: Connection) -> None:
            result = connection.execute(
                experiments.update()
                .where(experiments.c.name == name)
                .values(**fields, updated_at=time.time())
            )
            if result.rowcount == 0:
                raise ExperimentNotFoundError(f"no experiment named {name!r}")

        self._write(update)
        return self.get_experiment(fields.get("name") or name)
