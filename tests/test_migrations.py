"""Schema versions: migrations match the schema, old stores open, newer stores are refused.

``tests/data/stores/<revision>.db`` holds a store written by each schema revision. Every one of
them must open with the current code: once a revision is no longer the head, that test is the
upgrade test for it (and checks the backup made before upgrading).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

import expbook
from expbook import RunStatus, SchemaVersionError, StoreError
from expbook.store import migrate
from expbook.store.engine import make_engine
from expbook.store.schema import metadata
from tests.helpers import run_cli

FIXTURES = Path(__file__).parent / "data" / "stores"


def test_revisions_match_the_alembic_scripts() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", "expbook.store:migrations")
    scripts = ScriptDirectory.from_config(config)
    chain = [rev.revision for rev in reversed(list(scripts.walk_revisions()))]
    assert tuple(chain) == migrate.REVISIONS
    assert scripts.get_current_head() == migrate.HEAD


def test_migrations_build_exactly_the_schema(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    expbook.open_store(store_url).close()  # runs every migration
    engine = make_engine(expbook.store.resolve_url(store_url))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    engine.dispose()
    assert differences == []


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.db")), ids=lambda p: p.stem)
def test_stores_from_every_revision_open_and_read(fixture: Path, tmp_path: Path) -> None:
    copy = tmp_path / "old.db"
    shutil.copy(fixture, copy)
    store = expbook.open_store(copy)
    assert store.schema_version() == migrate.HEAD
    if fixture.stem != migrate.HEAD:
        assert (tmp_path / f"old.db.bak-{fixture.stem}").exists()  # upgraded, with a backup
    run = store.run("gru-256")
    assert run.status is RunStatus.FINISHED and run.experiment == "hidden size"
    assert run.params == {"model.hidden": 256, "lr": 0.001, "tags": ["a"]}
    assert run.tags == ("gru",) and run.notes[0].text == "first note"
    assert run.git.commit == "a" * 40 and run.git.dirty is True
    assert run.metrics["train/loss"].count == 100 and run.metrics["train/loss"].min_step == 99
    assert run.metrics["manual/acc"].unit == "%"
    series = store.series(run.id, "train/loss")
    assert list(series.steps) == list(range(100)) and series.epochs[10] == 1.0
    assert store.get_attachment(run.id, "git.diff") == b"+x\n"
    child = store.run(2)
    assert child.parent_number == 1 and child.status is RunStatus.FAILED and child.exit_code == 2
    if fixture.stem >= "0002":
        assert [chunk.text for chunk in store.get_output(run.id)] == ["epoch 1 loss=0.5\n"]
    if fixture.stem >= "0006":
        (trial,) = store.list_trials(store.get_sweep("lr").id)
        assert trial.run_number == 1 and trial.values == (0.01,) and trial.params == {"lr": 0.1}
    if fixture.stem >= "0008":
        (token,) = store.list_tokens()
        assert (token.name, token.read_only, token.revoked_at) == ("ci", True, None)
    _, secret = store.create_token("after-upgrade")  # and it takes tokens
    assert store.check_token(secret).name == "after-upgrade"
    run_id = store.create_run(expbook.store.RunSpec(name="new")).id  # and it takes writes
    assert store.run(run_id).number == 3
    once = expbook.store.WriteBatch(notes=[(1.0, "once")], batch_id="f" * 32)
    store.write(run_id, once)
    store.write(run_id, once)  # 0007: applied once
    assert [note.text for note in store.run(run_id).notes] == ["once"]


def _set_version(url: str, version: str) -> None:
    engine = make_engine(expbook.store.resolve_url(url))
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": version})
    engine.dispose()


def test_a_newer_store_is_refused(store_url: str) -> None:
    expbook.open_store(store_url).close()
    _set_version(store_url, "9999")
    with pytest.raises(SchemaVersionError, match=r"schema 9999, newer than this expbook"):
        expbook.open_store(store_url)


def _build_at(url: str, revision: str) -> None:
    """A store created by an older expbook: the migrations up to ``revision`` only."""
    from alembic import command
    from alembic.config import Config

    engine = make_engine(expbook.store.resolve_url(url))
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", "expbook.store:migrations")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.execute(
            sa.text(
                "INSERT INTO runs (uuid, number, name, kind, status, started_at) "
                "VALUES (:uuid, 1, 'old-run', 'train', 'finished', 1790000000)"
            ),
            {"uuid": "a" * 32},
        )
    engine.dispose()


def test_an_older_postgresql_store_says_what_to_run_and_upgrades(postgres_url: str) -> None:
    _build_at(postgres_url, "0001")
    with pytest.raises(SchemaVersionError) as error:
        expbook.open_store(postgres_url)
    assert f"has schema 0001; this expbook needs {migrate.HEAD}" in str(error.value)
    assert "Run: expbook db upgrade --store postgresql" in str(error.value)
    assert "secret" not in str(error.value)
    result = run_cli("db", "upgrade", "--store", postgres_url)
    assert result.returncode == 0, result.stderr
    assert f"from schema 0001 to {migrate.HEAD}" in result.stdout
    store = expbook.open_store(postgres_url)
    assert store.schema_version() == migrate.HEAD
    assert store.run("old-run").number == 1


def test_an_older_sqlite_store_is_upgraded_on_open_with_a_backup(tmp_path: Path) -> None:
    location = str(tmp_path / "old.db")
    _build_at(location, "0001")
    store = expbook.open_store(location)
    assert store.schema_version() == migrate.HEAD
    assert store.run("old-run").number == 1
    with pytest.raises(SchemaVersionError, match="has schema 0001"):  # the backup is untouched
        expbook.open_store(tmp_path / "old.db.bak-0001", auto_upgrade=False)


def test_foreign_databases_are_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE runs (x INTEGER)")
    with pytest.raises(StoreError, match="has a 'runs' table but no expbook schema version"):
        expbook.open_store(path)


def test_unwritable_location_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the store directory"):
        expbook.open_store(blocker / "sub" / "expbook.db")


@pytest.mark.parametrize(("revision", "table"), [("0007", "applied_writes"),
                                                 ("0008", "api_tokens")])  # fmt: skip
def test_a_migration_goes_down_and_up(store_url: str, revision: str, table: str) -> None:
    from alembic import command
    from alembic.config import Config

    expbook.open_store(store_url).close()
    engine = make_engine(expbook.store.resolve_url(store_url))
    config = Config()
    config.set_main_option("script_location", "expbook.store:migrations")
    before = migrate.REVISIONS[migrate.REVISIONS.index(revision) - 1]
    for target, present in ((before, False), (revision, True)):
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.downgrade if target == before else command.upgrade)(config, target)
        assert (table in sa.inspect(engine).get_table_names()) is present
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_compresses_chunks_with_lz4(postgres_url: str) -> None:
    """pglz cost half of the time of a big write (migration 0009)."""
    expbook.open_store(postgres_url).close()
    engine = make_engine(expbook.store.resolve_url(postgres_url))
    with engine.connect() as connection:
        methods = dict(
            connection.exec_driver_sql(
                "SELECT attname, attcompression FROM pg_attribute WHERE attrelid = "
                "'chunks'::regclass AND attname IN ('steps', 'vals', 'times', 'epochs')"
            ).all()
        )
    engine.dispose()
    assert methods == {name: "l" for name in ("steps", "vals", "times", "epochs")}
