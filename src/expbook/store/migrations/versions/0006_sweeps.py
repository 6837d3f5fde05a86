"""Sweeps and their trials (``expbook sweep``): coordinated through the store by a version
compared-and-set on the sweep row, and trials leased to workers with heartbeats.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from expbook.store.schema import Json

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("uuid", sa.String(32), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("experiment_id", sa.Integer, nullable=True),
        sa.Column("spec", sa.Text, nullable=False),  # OrderedJson: keys in the given order
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("change", sa.String(32), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sweeps"),
        sa.UniqueConstraint("uuid", name="uq_sweeps_uuid"),
        sa.UniqueConstraint("name", name="uq_sweeps_name"),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name="fk_sweeps_experiment_id_experiments",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_sweeps_experiment_id", "sweeps", ["experiment_id"])
    op.create_table(
        "sweep_trials",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("sweep_id", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("config", sa.Integer, nullable=False),
        sa.Column("repeat", sa.Integer, nullable=False),
        sa.Column("config_key", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False),  # OrderedJson
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("worker", sa.Text, nullable=True),
        sa.Column("lease", sa.String(32), nullable=True),
        sa.Column("heartbeat_at", sa.Double(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("values", Json, nullable=True),
        sa.Column("pruned_step", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sweep_trials"),
        sa.UniqueConstraint("sweep_id", "number", name="uq_sweep_trials_sweep_id_number"),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweeps.id"], name="fk_sweep_trials_sweep_id_sweeps", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_sweep_trials_run_id_runs", ondelete="SET NULL"
        ),
    )
    op.create_index(
        "ix_sweep_trials_sweep_id_config_key", "sweep_trials", ["sweep_id", "config_key"]
    )
    op.create_index(
        "ix_sweep_trials_sweep_id_state_number", "sweep_trials", ["sweep_id", "state", "number"]
    )
    op.create_index("ix_sweep_trials_run_id", "sweep_trials", ["run_id"])
    op.create_table(
        "sweep_specs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("sweep_id", sa.Integer, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("replaced_at", sa.Double(), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),  # OrderedJson
        sa.PrimaryKeyConstraint("id", name="pk_sweep_specs"),
        sa.UniqueConstraint("sweep_id", "version", name="uq_sweep_specs_sweep_id_version"),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweeps.id"], name="fk_sweep_specs_sweep_id_sweeps", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("sweep_specs")
    op.drop_index("ix_sweep_trials_run_id", table_name="sweep_trials")
    op.drop_index("ix_sweep_trials_sweep_id_state_number", table_name="sweep_trials")
    op.drop_index("ix_sweep_trials_sweep_id_config_key", table_name="sweep_trials")
    op.drop_table("sweep_trials")
    op.drop_index("ix_sweeps_experiment_id", table_name="sweeps")
    op.drop_table("sweeps")
