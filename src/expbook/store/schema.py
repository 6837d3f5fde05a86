"""The SQL schema (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Conventions:
- times are float seconds since the Unix epoch (UTC), so durations and staleness are arithmetic
  that every dialect does the same way;
- a metric value of NaN is stored as NULL in ``metric_summaries`` (SQLite cannot store NaN, and
  NULL gives every backend the same comparison semantics: NaN matches no ``<``/``>`` filter);
  series chunks keep NaN bit-exact inside their arrays;
- series are stored as chunks: packed little-endian arrays of up to ``CHUNK_POINTS`` points per
  (run, key), see ``expbook.store.chunks``.

The Alembic migrations in ``expbook/store/migrations`` must produce exactly this schema; a test
compares them.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)


class Json(sa.types.TypeDecorator[Any]):
    """JSON; JSONB on PostgreSQL. (Not ``JSON().with_variant(JSONB(), ...)``: that imports
    SQLAlchemy's PostgreSQL dialect, 30-50 ms, into every command, SQLite stores too.)"""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


class OrderedJson(sa.types.TypeDecorator[Any]):
    """JSON kept as its text, on every dialect: keys stay in the order they were given
    (PostgreSQL's JSONB sorts them), for what is shown as the user wrote it (a sweep's spec:
    its parameters in the file's order). Not for values queried inside the database."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None else json.loads(value)


Float = sa.Double()


class _SqliteExactDouble(sa.types.UserDefinedType[float]):
    """A float column SQLite stores exactly: its declared type has BLOB affinity (the name holds
    "BLOB"), so SQLite keeps a Python float as REAL as it is. With REAL affinity SQLite writes a
    whole float as an integer, and ``-0.0`` reads back as ``0.0``."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "DOUBLE_BLOB"


class ExactFloat(sa.types.TypeDecorator[float]):
    """A float value that keeps every bit a float has: its sign at zero too (a summary value of
    ``-0.0``). DOUBLE PRECISION on PostgreSQL; ``DOUBLE_BLOB`` (BLOB affinity) on SQLite."""

    impl = sa.Double
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SqliteExactDouble())
        return dialect.type_descriptor(sa.Double())


def _run_fk() -> sa.ForeignKey:
    return sa.ForeignKey("runs.id", ondelete="CASCADE")


experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("description", sa.Text),
    sa.Column("hypothesis", sa.Text),
    sa.Column("conclusion", sa.Text),
    sa.Column("created_at", Float, nullable=False),
    sa.Column("updated_at", Float, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uuid", sa.String(32), nullable=False, unique=True),
    sa.Column("number", sa.Integer, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False, index=True),
    sa.Column(
        "experiment_id",
        sa.Integer,
        sa.ForeignKey("experiments.id", ondelete="SET NULL"),
        index=True,
    ),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="SET NULL"), index=True),
    sa.Column("kind", sa.Text, nullable=False, server_default="train"),
    sa.Column("status", sa.Text, nullable=False, index=True),
    sa.Column("started_at", Float, nullable=False, index=True),
    sa.Column("ended_at", Float),
    sa.Column("heartbeat_at", Float),
    sa.Column("heartbeat_interval", Float),
    sa.Column("exit_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("command", Json),
    sa.Column("cwd", sa.Text),
    sa.Column("pid", sa.Integer),
    sa.Column("hostname", sa.Text),
    sa.Column("git_commit", sa.Text),
    sa.Column("git_branch", sa.Text),
    sa.Column("git_remote", sa.Text),
    sa.Column("git_dirty", sa.Boolean),
    sa.Column("host", Json),
    sa.Column("recorded_offset", sa.BigInteger),
    sa.Column("recorded_autolog", Json),
    sa.Column("recording_error", sa.Text),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", sa.Integer, _run_fk(), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value_json", sa.Text, nullable=False),
    sa.Column("value_num", Float),
    sa.Column("value_text", sa.Text),
    sa.Index(None, "key", "value_num"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", sa.Integer, _run_fk(), primary_key=True),
    sa.Column("tag", sa.Text, primary_key=True, index=True),
)

notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, _run_fk(), nullable=False, index=True),
    sa.Column("created_at", Float, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

metric_summaries = sa.Table(
    "metric_summaries",
    metadata,
    sa.Column("run_id", sa.Integer, _run_fk(), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", ExactFloat()),
    sa.Column("step", sa.BigInteger),
    sa.Column("epoch", Float),
    sa.Column("time", Float, nullable=False),
    sa.Column("min_value", ExactFloat()),
    sa.Column("min_step", sa.BigInteger),
    sa.Column("min_epoch", Float),
    sa.Column("max_value", ExactFloat()),
    sa.Column("max_step", sa.BigInteger),
    sa.Column("max_epoch", Float),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("unit", sa.Text),
    sa.Index(None, "key", "value"),
)

chunks = sa.Table(
    "chunks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, _run_fk(), nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("step_min", sa.BigInteger, nullable=False),
    sa.Column("step_max", sa.BigInteger, nullable=False),
    sa.Column("codec", sa.Text, nullable=False),
    sa.Column("steps", sa.LargeBinary, nullable=False),
    sa.Column("vals", sa.LargeBinary, nullable=False),
    sa.Column("times", sa.LargeBinary, nullable=False),
    sa.Column("epochs", sa.LargeBinary),
    sa.Index(None, "run_id", "key", "step_min"),
)

outputs = sa.Table(
    "outputs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, _run_fk(), nullable=False),
    sa.Column("stream", sa.Text, nullable=False),
    sa.Column("time", Float, nullable=False),
    sa.Column("lines", sa.Integer, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Index(None, "run_id", "id"),
)
"""Captured program output (``expbook run``): zlib-compressed UTF-8 text, whole lines each ending
in a newline, in the order they were printed; ``stream`` is ``stdout`` or ``stderr``."""

attachments = sa.Table(
    "attachments",
    metadata,
    sa.Column("run_id", sa.Integer, _run_fk(), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("encoding", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("run_id", sa.Integer, _run_fk(), primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("logged_at", Float, nullable=False),
)
"""Files runs keep (``log_artifact``, ``expbook run --artifacts``): the content lives in the
store's artifact location (fsspec) under its sha256, once for every run that has the same bytes;
the index on ``sha256`` answers "does any run still use this blob" when runs are deleted."""

store_settings = sa.Table(
    "store_settings",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
"""Settings of the store itself, the same for every client (``artifacts.location``)."""

sweeps = sa.Table(
    "sweeps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uuid", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column(
        "experiment_id",
        sa.Integer,
        sa.ForeignKey("experiments.id", ondelete="SET NULL"),
        index=True,
    ),
    sa.Column("spec", OrderedJson, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("change", sa.String(32)),
    sa.Column("created_at", Float, nullable=False),
    sa.Column("updated_at", Float, nullable=False),
    sa.Column("ended_at", Float),
)
"""Sweeps (``expbook.sweep``): the spec as given, and ``version``, moved by every change to the
sweep or to its set of trials (agents add trials by compare-and-set on it). ``change`` is the
token of the call that made the last change, so that a call retried after a lost connection can
tell its own committed change from another's."""

sweep_trials = sa.Table(
    "sweep_trials",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "sweep_id", sa.Integer, sa.ForeignKey("sweeps.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("config", sa.Integer, nullable=False),
    sa.Column("repeat", sa.Integer, nullable=False),
    sa.Column("config_key", sa.Text, nullable=False),
    sa.Column("params", OrderedJson, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="SET NULL"), index=True),
    sa.Column("worker", sa.Text),
    sa.Column("lease", sa.String(32)),
    sa.Column("heartbeat_at", Float),
    sa.Column("created_at", Float, nullable=False),
    sa.Column("started_at", Float),
    sa.Column("ended_at", Float),
    sa.Column("values", Json),
    sa.Column("pruned_step", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("sweep_id", "number"),
    sa.Index(None, "sweep_id", "config_key"),
    sa.Index(None, "sweep_id", "state", "number"),
)
"""The trials of sweeps, numbered from 0 per sweep. ``worker`` holds a ``running`` trial's
lease, renewed at ``heartbeat_at``; ``lease`` is the token of the call that last added, claimed
or expired the trial (a retried call finds its own committed work by it). ``run_id`` is the run
that executes the trial (kind ``sweep-trial``); deleting the run keeps the trial without it."""

sweep_specs = sa.Table(
    "sweep_specs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "sweep_id", sa.Integer, sa.ForeignKey("sweeps.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("replaced_at", Float, nullable=False),
    sa.Column("spec", OrderedJson, nullable=False),
    sa.UniqueConstraint("sweep_id", "version"),
)
"""The specs edits replaced (``expbook sweep edit``): each with the sweep's version it had, written
in the transaction that replaced it, so no edit's history is ever lost."""

applied_writes = sa.Table(
    "applied_writes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("run_id", sa.Integer, _run_fk(), nullable=False),
    sa.Column("batch_id", sa.String(32), nullable=False),
    sa.UniqueConstraint("run_id", "batch_id"),
)
"""The ids of the latest ``WriteBatch``es applied to each run (``Store.write``), recorded in the
write's own transaction: a write whose id is here was applied already, and is not applied again
(a retried COMMIT whose answer was lost). Pruned to the last ``KEEP_APPLIED`` per run (sql.py);
deleted with the run."""

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("read_only", sa.Boolean, nullable=False),
    sa.Column("created_at", Float, nullable=False),
    sa.Column("last_used_at", Float),
    sa.Column("revoked_at", Float),
    sa.UniqueConstraint("name"),
    sa.UniqueConstraint("secret_sha256"),
)
"""The team server's API tokens (``expbook token``, ``store/sqltokens.py``): the sha256 of each
secret, hex, is the key a request's token is looked up by (unique, so indexed); the secret itself
is never stored. A revoked token keeps its row (``revoked_at``) until a new token takes its name.
``last_used_at`` is written at most once a minute per token."""
