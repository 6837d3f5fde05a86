"""The recorder's bookmark and recording errors, for `expbook run`; summary values kept exactly
on SQLite (the sign of -0.0).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from expbook.store.schema import ExactFloat

_EXACT = ("value", "min_value", "max_value")

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("recorded_offset", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("recording_error", sa.Text, nullable=True))
    if op.get_bind().dialect.name == "sqlite":  # PostgreSQL's DOUBLE PRECISION is exact already
        with op.batch_alter_table("metric_summaries", recreate="always") as batch:
            for column in _EXACT:
                batch.alter_column(column, type_=ExactFloat(), existing_nullable=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("metric_summaries", recreate="always") as batch:
            for column in _EXACT:
                batch.alter_column(column, type_=sa.Double(), existing_nullable=True)
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("recording_error")
        batch.drop_column("recorded_offset")
