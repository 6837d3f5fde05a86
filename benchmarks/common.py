"""What the benchmarks share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import expbook


def compile_package() -> None:
    """Write expbook's bytecode, as an installed package has it (pip compiles on install).

    Without it, under ``PYTHONDONTWRITEBYTECODE=1`` every start compiles the modules from
    source, which no installed copy does, and start-up numbers read 15-20 ms too high.
    """
    package = Path(expbook.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def fresh_postgres_database(url: str, prefix: str = "bench") -> str:
    """Create an empty database on the PostgreSQL server of ``url``; returns its URL."""
    import uuid

    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return sa.make_url(url).set(database=name).render_as_string(hide_password=False)
