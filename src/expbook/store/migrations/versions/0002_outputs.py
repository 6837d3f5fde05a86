"""Captured program output for `expbook run`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outputs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("stream", sa.Text, nullable=False),
        sa.Column("time", sa.Double(), nullable=False),
        sa.Column("lines", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outputs"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_outputs_run_id_runs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_outputs_run_id_id", "outputs", ["run_id", "id"])


def downgrade() -> None:
    op.drop_table("outputs")
