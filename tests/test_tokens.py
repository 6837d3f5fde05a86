"""API tokens in the store (``Store.create_token`` ...) and ``expbook token``, on SQLite and
PostgreSQL: secrets shown once and stored as their sha256, names checked, revocation,
``last_used_at`` written at most once a minute."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import expbook
from expbook.errors import InvalidValueError, StoreError, TokenExistsError, TokenNotFoundError
from expbook.store import Store
from expbook.store.engine import make_engine
from expbook.store.sqltokens import LAST_USED_EVERY
from tests.helpers import run_cli


def _rows(store: Store) -> list[dict[str, object]]:
    engine = make_engine(store.url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM api_tokens ORDER BY id")).mappings()
        found = [dict(row) for row in rows]
    engine.dispose()
    return found


def test_a_token_is_created_checked_listed_and_revoked(store: Store) -> None:
    record, secret = store.create_token("ana")
    assert secret.startswith("ebk_") and len(secret) == 4 + 43
    assert (record.name, record.read_only, record.active) == ("ana", False, True)
    assert abs(record.created_at - time.time()) < 60
    checked = store.check_token(secret)
    assert checked is not None and (checked.name, checked.read_only) == ("ana", False)
    _, reader_secret = store.create_token("dashboards", read_only=True)
    assert store.check_token(reader_secret).read_only is True  # type: ignore[union-attr]
    assert [t.name for t in store.list_tokens()] == ["ana", "dashboards"]
    revoked = store.revoke_token("ana")
    assert revoked.revoked_at is not None and not revoked.active
    assert store.check_token(secret) is None
    assert store.revoke_token("ana") == revoked  # again: nothing changes
    assert store.check_token(reader_secret) is not None


def test_only_the_sha256_of_a_secret_is_stored(store: Store) -> None:
    _, secret = store.create_token("ana")
    (row,) = _rows(store)
    assert row["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps({k: str(v) for k, v in row.items()})


def test_secrets_other_than_a_tokens_are_refused(store: Store) -> None:
    _, secret = store.create_token("ana")
    for wrong in ["", "ebk_", secret[:-1], secret + "x", secret.upper(), "Bearer " + secret,
                  secret[4:], "ebk_" + "x" * 5000, "ebk_\x00"]:  # fmt: skip
        assert store.check_token(wrong) is None, wrong


def test_token_names_are_checked_with_one_line(store: Store) -> None:
    for bad in ["", " ana", "ana smith", "-ana", "a" * 65, "ana\n", "ana/ci", "ana\x00", 12]:
        with pytest.raises(InvalidValueError, match=r"^invalid token name .*: use 1-64"):
            store.create_token(bad)  # type: ignore[arg-type]
    for good in ["a", "ci-nightly", "gpu_box.3", "ana@lab", "A" * 64]:
        store.create_token(good)
    with pytest.raises(InvalidValueError, match="read_only 'yes' is not a bool"):
        store.create_token("x", read_only="yes")  # type: ignore[arg-type]


def test_a_name_is_taken_until_its_token_is_revoked(store: Store) -> None:
    _, first = store.create_token("ci")
    with pytest.raises(TokenExistsError, match=r"a token named 'ci' exists; revoke it first"):
        store.create_token("ci", read_only=True)
    assert store.check_token(first) is not None  # the failed create changed nothing
    store.revoke_token("ci")
    record, second = store.create_token("ci", read_only=True)  # replaces the revoked one
    assert record.read_only and store.check_token(second) is not None
    assert store.check_token(first) is None
    assert [(t.name, t.active) for t in store.list_tokens()] == [("ci", True)]


def test_revoking_an_unknown_name_says_so(store: Store) -> None:
    store.create_token("ci-nightly")
    with pytest.raises(TokenNotFoundError, match=r"no token named 'ci-nighty' \(did you mean "):
        store.revoke_token("ci-nighty")


def test_last_used_is_written_at_most_once_a_minute(store: Store) -> None:
    record, secret = store.create_token("ana")
    assert record.last_used_at is None
    store.check_token(secret)
    (row,) = _rows(store)
    first = row["last_used_at"]
    assert first is not None and abs(first - time.time()) < 60
    for _ in range(5):
        store.check_token(secret)
    assert _rows(store)[0]["last_used_at"] == first  # not per request
    engine = make_engine(store.url)
    with engine.begin() as connection:  # a minute later
        connection.execute(
            sa.text("UPDATE api_tokens SET last_used_at = :t"),
            {"t": first - LAST_USED_EVERY - 1},
        )
    engine.dispose()
    store.check_token(secret)
    assert _rows(store)[0]["last_used_at"] > first - 1
    assert store.list_tokens()[0].last_used_at == _rows(store)[0]["last_used_at"]


def test_a_store_without_tokens_refuses_in_one_line() -> None:
    """A backend that keeps no tokens (the HTTP store) inherits refusals that say where to go."""
    from expbook.store.base import Store as Base

    class Other(Base):  # the primitives are not called here
        pass

    Other.__abstractmethods__ = frozenset()
    other = Other()
    for call in (lambda: other.create_token("x"), other.list_tokens,
                 lambda: other.revoke_token("x"), lambda: other.check_token("ebk_x")):  # fmt: skip
        with pytest.raises(StoreError, match=r"keeps no API tokens: run it where the server's "
                           r"database is: --store postgresql://"):  # fmt: skip
            call()


# --- expbook token ------------------------------------------------------------------------------


def test_expbook_token_create_ls_revoke(store_url: str) -> None:
    expbook.open_store(store_url).close()
    created = run_cli("token", "create", "ana", store=store_url)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("ebk_") and "\n" not in secret  # stdout: the secret alone
    assert "not shown again" in created.stderr and "'ana'" in created.stderr
    reader = run_cli("token", "create", "dash", "--read-only", store=store_url)
    assert reader.returncode == 0 and "read-only" in reader.stderr
    with expbook.open_store(store_url) as store:
        assert store.check_token(secret).name == "ana"  # type: ignore[union-attr]
    again = run_cli("token", "create", "ana", store=store_url)
    assert again.returncode == 1
    assert again.stderr.startswith("error: a token named 'ana' exists")
    assert again.stderr.count("\n") == 1
    listed = run_cli("token", "ls", store=store_url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert "ana" in listed.stdout and "dash" in listed.stdout and "read-only" in listed.stdout
    assert secret not in listed.stdout and not any("ebk_" in line for line in lines)
    revoked = run_cli("token", "revoke", "ana", store=store_url)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stderr
    as_json = run_cli("token", "ls", "--json", store=store_url)
    tokens = json.loads(as_json.stdout)
    assert [(t["name"], t["read_only"], t["revoked_at"] is not None) for t in tokens] == [
        ("ana", False, True),
        ("dash", True, False),
    ]
    assert set(tokens[0]) == {"name", "read_only", "created_at", "last_used_at", "revoked_at"}
    missing = run_cli("token", "revoke", "bob", store=store_url)
    assert missing.returncode == 1 and missing.stderr == "error: no token named 'bob'\n"
    bad = run_cli("token", "create", "a b", store=store_url)
    assert bad.returncode == 1 and bad.stderr.startswith("error: invalid token name 'a b'")


def test_expbook_token_ls_with_no_tokens_says_how_to_make_one(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    expbook.open_store(store).close()
    listed = run_cli("token", "ls", "--store", str(store))
    assert listed.returncode == 0
    assert "no tokens" in listed.stdout and "expbook token create NAME" in listed.stdout
    assert run_cli("token", "ls", "--json", "--store", str(store)).stdout.strip() == "[]"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/", "https://expbook.lab.example"])
@pytest.mark.parametrize("command", [["create", "ana"], ["ls"], ["revoke", "ana"]])
def test_expbook_token_refuses_an_http_store_in_one_line(url: str, command: list[str]) -> None:
    result = run_cli("token", *command, "--store", url, timeout=30)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "run it where the server's database is: --store postgresql://" in result.stderr
