"""PostgreSQL: metric chunks compressed with lz4 instead of pglz (SQLite: nothing changes).

A chunk's columns are packed arrays of a few KB to 64 KB, which PostgreSQL compresses on the way
into TOAST; with its default method, pglz, that compression cost half the time of a write of
200,000 points (105,000 points/s with pglz, 212,000 with lz4 and 212,000 with no compression,
``benchmarks/bench_remote.py`` and docs/design.md, "Remote stores"), and lz4 still shrinks the
step and time columns. Rows written before keep their compression; both are read alike. A
server built without lz4 (``--with-lz4``, in every PGDG and Debian build since 14) keeps pglz.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = ("steps", "vals", "times", "epochs")


def _set(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    supported = bind.scalar(
        sa.text(
            "SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression' "
            "AND :method = ANY(enumvals)"
        ),
        {"method": method},
    )
    if not supported:
        return
    columns = ", ".join(f"ALTER COLUMN {c} SET COMPRESSION {method}" for c in COLUMNS)
    op.execute(f"ALTER TABLE chunks {columns}")


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("pglz")
