"""The initial schema: experiments, runs, params, tags, notes, metric summaries, series chunks and
attachments.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Float = sa.Double()


def _run_fk(name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["runs.id"], name=f"fk_{name}_run_id_runs", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("hypothesis", sa.Text),
        sa.Column("conclusion", sa.Text),
        sa.Column("created_at", Float, nullable=False),
        sa.Column("updated_at", Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_experiments"),
        sa.UniqueConstraint("name", name="uq_experiments_name"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("uuid", sa.String(32), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("experiment_id", sa.Integer),
        sa.Column("parent_id", sa.Integer),
        sa.Column("kind", sa.Text, nullable=False, server_default="train"),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("started_at", Float, nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("uuid", name="uq_runs_uuid"),
        sa.UniqueConstraint("number", name="uq_runs_number"),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name="fk_runs_experiment_id_experiments",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["runs.id"], name="fk_runs_parent_id_runs", ondelete="SET NULL"
        ),
    )
    for column in ("name", "experiment_id", "parent_id", "status", "started_at"):
        op.create_index(f"ix_runs_{column}", "runs", [column])
    op.create_table(
        "params",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value_json", sa.Text, nullable=False),
        sa.Column("value_num", Float),
        sa.Column("value_text", sa.Text),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_params"),
        _run_fk("params"),
    )
    op.create_index("ix_params_key_value_num", "params", ["key", "value_num"])
    op.create_table(
        "tags",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "tag", name="pk_tags"),
        _run_fk("tags"),
    )
    op.create_index("ix_tags_tag", "tags", ["tag"])
    op.create_table(
        "notes",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("created_at", Float, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notes"),
        _run_fk("notes"),
    )
    op.create_index("ix_notes_run_id", "notes", ["run_id"])
    op.create_table(
        "metric_summaries",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", Float),
        sa.Column("step", sa.BigInteger),
        sa.Column("epoch", Float),
        sa.Column("time", Float, nullable=False),
        sa.Column("min_value", Float),
        sa.Column("min_step", sa.BigInteger),
        sa.Column("min_epoch", Float),
        sa.Column("max_value", Float),
        sa.Column("max_step", sa.BigInteger),
        sa.Column("max_epoch", Float),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("unit", sa.Text),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_metric_summaries"),
        _run_fk("metric_summaries"),
    )
    op.create_index("ix_metric_summaries_key_value", "metric_summaries", ["key", "value"])
    op.create_table(
        "chunks",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("step_min", sa.BigInteger, nullable=False),
        sa.Column("step_max", sa.BigInteger, nullable=False),
        sa.Column("codec", sa.Text, nullable=False),
        sa.Column("steps", sa.LargeBinary, nullable=False),
        sa.Column("vals", sa.LargeBinary, nullable=False),
        sa.Column("times", sa.LargeBinary, nullable=False),
        sa.Column("epochs", sa.LargeBinary),
        sa.PrimaryKeyConstraint("id", name="pk_chunks"),
        _run_fk("chunks"),
    )
    op.create_index("ix_chunks_run_id_key_step_min", "chunks", ["run_id", "key", "step_min"])
    op.create_table(
        "attachments",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("encoding", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", name="pk_attachments"),
        _run_fk("attachments"),
    )


def downgrade() -> None:
    for table in (
        "attachments", "chunks", "metric_summaries", "notes", "tags", "params", "runs",
        "experiments",
    ):  # fmt: skip
        op.drop_table(table)
