"""The ids of the latest writes applied to each run, so that a write retried after a lost
COMMIT answer is applied exactly once (``Store.write``, docs/design.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "applied_writes",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("batch_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_applied_writes"),
        sa.UniqueConstraint("run_id", "batch_id", name="uq_applied_writes_run_id_batch_id"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_applied_writes_run_id_runs", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("applied_writes")
