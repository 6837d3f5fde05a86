"""The recorder's bookmark and recording errors, for `expbook run`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("recorded_offset", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("recording_error", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("recording_error")
        batch.drop_column("recorded_offset")
