"""Shared fixtures: real stores on SQLite files and on the real PostgreSQL server.

``store`` is parametrized over both backends, so every test that takes it runs on each (the
store contract itself is a test class, tests/store_contract.py, run by tests/test_store.py).
PostgreSQL tests get a fresh schema each (through ``search_path``); when the server is
unreachable they are skipped, except with ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

import expbook
from expbook.store import Store

from .pgproxy import CommitDropper
from .s3server import S3Server

if TYPE_CHECKING:
    from tests.browser import UiPage

POSTGRES_URL = os.environ.get(
    "EXPBOOK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_problem() -> str | None:
    try:
        import psycopg

        with psycopg.connect(
            POSTGRES_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=3
        ):
            return None
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}"


_PROBLEM: list[str | None] = []


def postgres_available() -> None:
    """Skip (or, with CI=true, fail) when PostgreSQL is unreachable."""
    if not _PROBLEM:
        _PROBLEM.append(_postgres_problem())
    problem = _PROBLEM[0]
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"{problem} (CI=true: PostgreSQL is required)")
    pytest.skip(problem)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose ``search_path`` is a new, empty schema, dropped afterwards."""
    postgres_available()
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_URL.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return str(tmp_path / "store" / "expbook.db")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The location of an empty store on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "store" / "expbook.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = expbook.open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def tracker(store: Store) -> expbook.Tracker:
    return expbook.Tracker(store)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's store or writes into the repository. System metrics are
    off unless a test turns them on (tests/test_system.py does, with the argument or by
    removing the variable): the other tests check exactly the series they logged."""
    monkeypatch.delenv("EXPBOOK_STORE", raising=False)
    monkeypatch.delenv("EXPBOOK_RUN_ID", raising=False)
    monkeypatch.setenv("EXPBOOK_FLUSH_INTERVAL", "0.1")
    monkeypatch.setenv("EXPBOOK_SYSTEM_METRICS", "0")
    monkeypatch.delenv("EXPBOOK_TOKEN", raising=False)
    monkeypatch.setenv("EXPBOOK_JOURNAL", str(tmp_path / "journal"))  # a remote store's
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # expbook login's tokens


@pytest.fixture
def dropper(postgres_url: str) -> Iterator[tuple[CommitDropper, Store]]:
    """A store on the test's PostgreSQL database reached through a ``CommitDropper``: a proxy
    that lets a COMMIT reach the server and loses its answer (tests/pgproxy.py)."""
    real = sa.make_url(POSTGRES_URL)
    proxy = CommitDropper((real.host or "127.0.0.1", real.port or 5432))
    url = sa.make_url(postgres_url).set(host="127.0.0.1", port=proxy.port)
    url = url.update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
    store = expbook.open_store(url.render_as_string(hide_password=False))
    yield proxy, store
    store.close()
    proxy.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A local S3 server (moto in server mode, its own process) for the whole session."""
    server = S3Server()
    yield server
    server.close()


@pytest.fixture
def s3_url(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<a new, empty bucket>/expbook`` on the local S3 server, with its endpoint and
    credentials in the standard AWS variables (for this process and the children it starts)."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.create_bucket()}/expbook"


# --- browser tests (tests/browser.py) -----------------------------------------------------------
# A module of browser tests defines ``server`` (the base URL of its ``expbook ui``); these give it
# one Chromium for the module and a fresh tab per test. A module may define its own instead.


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from tests.browser import chromium

    with chromium() as launched:
        yield launched


@pytest.fixture
def ui(browser: Any, server: str, tmp_path: Path) -> Iterator[UiPage]:
    from tests.browser import ui_page

    with ui_page(browser, server, tmp_path) as tab:
        yield tab
