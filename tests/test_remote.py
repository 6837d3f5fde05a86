"""Remote stores: the wire format, the journal, and ``HttpStore`` against a real server
process (``expbook server`` on loopback) in front of a SQLite or PostgreSQL store."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from array import array
from pathlib import Path

import pytest

import expbook
from expbook.errors import (
    FilterSyntaxError,
    RunNotFoundError,
    StoreRefusedError,
    StoreUnavailableError,
)
from expbook.model import ArtifactRecord, RunStatus
from expbook.remote import wire
from expbook.remote.client import CALLS, READS, HttpStore
from expbook.remote.journal import Journal
from expbook.store import RunQuery, RunSpec, WriteBatch
from expbook.store.base import OutputText, SummaryValue
from expbook.store.chunks import Points
from tests.helpers import run_cli
from tests.serverproc import ServerProcess

NO_AUTH = {"args": ("--no-auth",)}  # auth: tests/test_server_auth.py and the tests below

# --- the wire format ----------------------------------------------------------------------------


def _points(n: int, start: int = 0) -> Points:
    result = Points()
    for i in range(start, start + n):
        result.append(i, 1.0 / (i + 1), 1_700_000_000.0 + i, None if i % 2 else i / 10)
    return result


def test_a_write_batch_travels_whole() -> None:
    batch = WriteBatch(
        replaced={"system/cpu": _points(3)},
        points={"loss": _points(1000), "acc": _points(2, 5)},
        params={"lr": 0.001, "layers": [64, 64], "nested.key": None, "$": "dollar"},
        tags_add={"a", "b"},
        tags_remove={"c"},
        notes=[(1.5, "a note\nwith lines ✓")],
        note_edits={3: "edited", 4: None},
        summary={"best": SummaryValue(0.5, "s", 2.0, step=3, max=0.9)},
        attachments={"config.yaml": b"\x00\x01binary"},
        artifacts={"model.pt": ArtifactRecord("model.pt", "ab" * 32, 12, 3.0)},
        output=[OutputText("stdout", 4.0, "epoch 1\n")],
        update={"status": RunStatus.FINISHED, "exit_code": 0, "git_dirty": False},
        heartbeat=5.0,
        batch_id="f" * 32,
    )
    back = next(wire.unframe(wire.framed([wire.frame({"op": "write", "batch": batch})])))["batch"]
    assert back.points["loss"].steps == batch.points["loss"].steps
    assert back.points["loss"].values == batch.points["loss"].values
    assert back.points["loss"].times == batch.points["loss"].times
    assert [math.isnan(e) for e in back.points["loss"].epochs] == [
        math.isnan(e) for e in batch.points["loss"].epochs
    ]
    assert back.replaced["system/cpu"].values == batch.replaced["system/cpu"].values
    same = ("params", "tags_add", "tags_remove", "notes", "note_edits", "summary", "attachments",
            "artifacts", "output", "update", "heartbeat", "batch_id")  # fmt: skip
    for name in same:
        assert getattr(back, name) == getattr(batch, name), name
    assert back.update["status"] is RunStatus.FINISHED
    assert isinstance(back.tags_add, set)


def test_errors_travel_as_their_own_class() -> None:
    exc = FilterSyntaxError("unexpected ')'", "params.lr > )", 12)
    back = wire.decode_error(wire.encode_error(exc))
    assert type(back) is FilterSyntaxError
    assert (back.reason, back.text, back.position) == ("unexpected ')'", "params.lr > )", 12)
    assert str(back) == str(exc)
    refused = wire.decode_error(wire.encode_error(StoreRefusedError("no", "bad byte")))
    assert isinstance(refused, StoreRefusedError) and refused.reason == "bad byte"
    bug = wire.decode_error(wire.encode_error(KeyError("x")))
    assert type(bug) is expbook.StoreError and "KeyError" in str(bug)


def test_a_damaged_or_unknown_message_is_refused_clearly() -> None:
    body = wire.framed([wire.frame({"op": "write"})])
    with pytest.raises(wire.WireError, match="ends inside"):
        list(wire.unframe(body[:-3]))
    with pytest.raises(wire.WireError, match="damaged"):
        list(wire.unframe(body[:4] + b"x" * (len(body) - 4)))
    with pytest.raises(wire.WireError, match="unknown type 'Popen'"):
        wire.decode({"$": "Popen", "f": {}})
    newer = wire.framed([wire.frame({"op": "write"}), zlib.compress(b'{"$": "Popen", "f": {}}')])
    first, second = wire.unframe(newer)  # an operation of a newer version: only it fails
    assert first == {"op": "write"} and isinstance(second, wire.WireError)
    stand_in = wire.decode(wire.encode({"f": object()}))["f"]  # the store refuses it
    assert type(stand_in).__name__ == "object" and repr(stand_in).startswith("<object object")


def test_arrays_keep_their_type_and_values() -> None:
    values = array("d", [0.1, -math.inf, 1e300])
    assert wire.decode(wire.encode(values)) == values
    assert wire.decode(wire.encode(array("q", [-(2**63), 2**63 - 1]))) == array(
        "q", [-(2**63), 2**63 - 1]
    )


# --- the journal --------------------------------------------------------------------------------


def test_journal_entries_keep_their_order_and_survive_their_process(tmp_path: Path) -> None:
    journal = Journal("http://x:1", str(tmp_path))
    code = textwrap.dedent(f"""
        import os, signal
        from expbook.remote.journal import Journal
        own = Journal("http://x:1", {str(tmp_path)!r}).own()
        for i in range(12):
            own.append(str(i).encode())
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    killed = subprocess.run([sys.executable, "-c", code], check=False)
    assert killed.returncode == -signal.SIGKILL
    mine = journal.own()
    assert [alive for *_, alive in journal.status()] == [False]  # mine is empty: not listed
    (orphan,) = journal.orphans(skip=mine.directory)
    assert [e.data for e in orphan.pending()] == [str(i).encode() for i in range(12)]
    assert list(journal.orphans(skip=mine.directory)) == []  # locked while this one sends it
    orphan.remove(orphan.pending()[:5])
    orphan.close()
    (again,) = journal.orphans(skip=mine.directory)
    assert [e.data for e in again.pending(limit_bytes=2)] == [b"5", b"6"]
    again.remove(again.pending())
    again.close()
    assert journal.producers() == [mine.directory]  # sent: its folder went
    mine.close()
    assert journal.producers() == []


RACE = """
import sys, time
from expbook.remote.journal import Journal
journal = Journal("http://x:1", sys.argv[1])
end = time.monotonic() + float(sys.argv[2])
made = 0
while time.monotonic() < end:
    own = journal.own()  # what a client does as it starts
    own.append(b"x")
    for orphan in journal.orphans(skip=own.directory):  # what it does next: send the dead's
        orphan.remove(orphan.pending())
        orphan.close()
    own.remove(own.pending())
    own.close()
    made += 1
print(made)
"""


def test_clients_starting_at_once_never_take_each_others_new_folder(tmp_path: Path) -> None:
    """A producer folder is made and locked under a name senders skip, then renamed: an empty
    unlocked folder would be another process's orphan to remove (one of eight clients starting
    together died that way)."""
    command = [sys.executable, "-c", RACE, str(tmp_path), "3"]
    racers = [
        subprocess.Popen(command, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
        assert int(out) > 10
    assert Journal("http://x:1", str(tmp_path)).producers() == []


# --- HttpStore against a real server ----------------------------------------------------------


@pytest.fixture
def server(store_url: str, tmp_path: Path):
    """A server on each backend: for what the server's database decides (what is stored, which
    errors, what is refused)."""
    process = ServerProcess(store_url, tmp_path / "server.log", **NO_AUTH).start()
    yield process
    process.stop()


@pytest.fixture
def sqlite_server(sqlite_url: str, tmp_path: Path):
    """A server on SQLite: for what the client does (its journal, the CLI, ``expbook run``),
    which does not depend on the server's database; the store contract runs through HTTP on
    both backends (test_store_http.py), and these ran on PostgreSQL too until the suite needed
    the time."""
    process = ServerProcess(sqlite_url, tmp_path / "server.log", **NO_AUTH).start()
    yield process
    process.stop()


def _log(remote: HttpStore, n: int, *, name: str = "remote") -> str:
    run = expbook.start_run(name=name, params={"lr": 0.1, "layers": [1, 2]}, store=remote)
    for i in range(n):
        run.log({"loss": 1.0 / (i + 1), "acc": i / n}, step=i)
    run.note("first")
    run.tag("remote")
    run.finish()
    return run.id


def _check_complete(store: expbook.Store, run_id: str, n: int) -> None:
    record = store.run(run_id)
    assert record.status is RunStatus.FINISHED
    assert dict(record.params) == {"lr": 0.1, "layers": [1, 2]}
    assert [note.text for note in record.notes] == ["first"]
    assert record.tags == ("remote",)
    loss = store.series(run_id, "loss")
    assert list(loss.steps) == list(range(n))  # every point, once
    assert list(loss.values) == [1.0 / (i + 1) for i in range(n)]
    assert record.metrics["acc"].count == n


def test_a_run_logged_through_the_server_is_stored_exactly(
    server: ServerProcess, store_url: str
) -> None:
    remote = expbook.open_store(server.url)
    assert isinstance(remote, HttpStore)
    run_id = _log(remote, 30_000)
    _check_complete(remote, run_id, 30_000)
    with expbook.open_store(store_url) as local:  # the same run in the server's database
        _check_complete(local, run_id, 30_000)
        assert local.run(run_id).number == remote.run(run_id).number == 1
    assert remote.count_runs(RunQuery(where="metrics.acc > 0.5")) == 1
    assert [s.key for s in remote.iter_series([run_id], ["acc", "loss"])] == ["acc", "loss"]
    remote.close()
    assert Journal(server.url).producers() == []  # everything acknowledged, nothing kept


def test_the_servers_errors_are_raised_as_a_local_store_raises_them(
    server: ServerProcess,
) -> None:
    with expbook.open_store(server.url) as remote:
        with pytest.raises(RunNotFoundError, match="no run"):
            remote.run("12")
        with pytest.raises(FilterSyntaxError) as caught:
            remote.runs("params.lr >")
        assert caught.value.position == 11
        with pytest.raises(RunNotFoundError, match=r"parent run .#12. does not exist"):
            remote.create_run(RunSpec(parent="#12"))  # a creation is answered at once
        assert remote.journal.rejected() == []


def test_offline_writes_are_kept_and_sent_when_the_server_is_back(
    sqlite_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    server = ServerProcess(sqlite_url, tmp_path / "server.log", **NO_AUTH)
    remote = expbook.open_store(server.url)  # nothing listens there yet
    run_id = _log(remote, 5_000, name="offline")
    remote.close()
    err = capfd.readouterr().err
    assert "are kept in" in err and "expbook sync" in err
    assert err.count("\n") == 1  # one line, whatever the number of writes
    status = run_cli("sync", "--status", "--json", store=server.url)
    assert status.returncode == 1
    waiting = json.loads(status.stdout)["waiting"]
    assert waiting and not waiting[0]["alive"] and waiting[0]["entries"] >= 2
    server.start()
    try:
        synced = run_cli("sync", store=server.url)
        assert synced.returncode == 0, synced.stderr
        assert "nothing waits" in synced.stdout
        with expbook.open_store(sqlite_url) as local:
            _check_complete(local, run_id, 5_000)
            assert local.run(run_id).number == 1
    finally:
        server.stop()


def test_a_killed_clients_journal_is_sent_by_the_next_command(
    sqlite_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(sqlite_url, tmp_path / "server.log", **NO_AUTH)
    code = textwrap.dedent(f"""
        import os, signal, expbook
        run = expbook.start_run(name="killed", store={server.url!r})
        for i in range(1000):
            run.log({{"x": i}}, step=i)
        run.note("before the kill")
        assert run.flush(30)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    killed = subprocess.run([sys.executable, "-c", code], check=False, env={**os.environ})
    assert killed.returncode == -signal.SIGKILL
    server.start()
    try:
        listed = run_cli("ls", store=server.url)  # any command on the store sends it first
        assert listed.returncode == 0, listed.stderr
        assert "killed" in listed.stdout
        with expbook.open_store(sqlite_url) as local:
            (record,) = local.runs()
            assert [n.text for n in record.notes] == ["before the kill"]
            assert list(local.series(record.id, "x").values) == [float(i) for i in range(1000)]
    finally:
        server.stop()


def test_a_write_refused_after_the_fact_is_kept_aside_with_its_reason(
    server: ServerProcess, store_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    remote = expbook.open_store(server.url)
    run_id = remote.create_run(RunSpec(name="doomed")).id
    server.stop()
    remote.add_note(run_id, "written while the server is down")  # journaled
    with expbook.open_store(store_url) as local:
        local.delete_run(run_id)
    server.start()
    left = remote.sync()
    assert left == (0, 0)
    (kept,) = remote.journal.rejected()
    reason = json.loads(Path(kept[: -len(".op")] + ".reason").read_text())["reason"]
    assert reason.startswith("RunNotFoundError")
    assert f"kept in {kept}" in capfd.readouterr().err
    remote.close()


def test_the_cli_works_against_a_server(sqlite_server: ServerProcess) -> None:
    created = run_cli("experiment", "new", "lr-search", "--hypothesis", "smaller is better",
                      store=sqlite_server.url)  # fmt: skip
    assert created.returncode == 0, created.stderr
    with expbook.open_store(sqlite_server.url) as remote:
        run_id = remote.create_run(RunSpec(name="cli", experiment="lr-search")).id
        remote.set_metric(run_id, "acc", 0.75)
    for args, expected in (
        (("ls",), "cli"),
        (("show", "1"), "0.75"),
        (("note", "1", "looks good"), ""),
        (("experiment", "ls"), "lr-search"),
    ):
        result = run_cli(*args, store=sqlite_server.url)
        assert result.returncode == 0, (args, result.stderr)
        assert expected in result.stdout
    with expbook.open_store(sqlite_server.url) as remote:
        assert [n.text for n in remote.run(run_id).notes] == ["looks good"]


def test_sync_and_login_refuse_a_local_store_in_one_line(tmp_path: Path) -> None:
    result = run_cli("sync", store=str(tmp_path / "x.db"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "not an expbook server" in result.stderr


def test_a_server_that_cannot_be_reached_is_unavailable_for_reads(tmp_path: Path) -> None:
    remote = expbook.open_store("http://127.0.0.1:9")
    with remote, pytest.raises(StoreUnavailableError, match="cannot reach"):
        remote.runs()


TRAIN = "for epoch in range(3):\n    print(f'epoch {epoch} loss {1 / (epoch + 1):.3f}')\n"


def test_expbook_run_through_a_server_is_there_when_it_returns(
    sqlite_server: ServerProcess, tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text(TRAIN)
    result = run_cli("run", "--", sys.executable, "train.py", "--lr", "0.1",
                     store=sqlite_server.url, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "run #1 finished" in result.stderr
    shown = run_cli("show", "1", "--json", store=sqlite_server.url)  # right away: no waiting
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["status"] == "finished" and record["params"] == {"lr": 0.1}
    assert record["metrics"]["loss"]["count"] == 3


def test_expbook_run_while_the_server_is_down_keeps_the_run_in_the_journal(
    sqlite_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(sqlite_url, tmp_path / "server.log", **NO_AUTH)
    (tmp_path / "train.py").write_text(TRAIN)
    result = run_cli("run", "--", sys.executable, "train.py", store=server.url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr  # the program's status, not the server's
    assert "finished" in result.stderr and "kept in the journal" in result.stderr
    assert "not fully recorded" not in result.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the recorder ends in the background
        status = json.loads(run_cli("sync", "--status", "--json", store=server.url).stdout)
        if status["waiting"] and not any(w["alive"] for w in status["waiting"]):
            break
        time.sleep(0.2)
    server.start()
    try:
        synced = run_cli("sync", store=server.url)
        assert synced.returncode == 0, synced.stderr
        with expbook.open_store(sqlite_url) as local:
            (record,) = local.runs()
            assert record.status is RunStatus.FINISHED and record.exit_code == 0
            assert list(local.series(record.id, "loss").values) == [1.0, 0.5, 0.333]
            assert "".join(c.text for c in local.get_output(record.id)) == TRAIN_OUTPUT
    finally:
        server.stop()


TRAIN_OUTPUT = "epoch 0 loss 1.000\nepoch 1 loss 0.500\nepoch 2 loss 0.333\n"


def test_only_the_item_the_servers_database_refuses_is_dropped(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    path = tmp_path / "expbook.db"
    expbook.open_store(path).close()
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TRIGGER no_bad_notes BEFORE INSERT ON notes WHEN NEW.text LIKE "
            "'%forbidden%' BEGIN SELECT RAISE(ABORT, 'this note is refused'); END"
        )
    server = ServerProcess(f"sqlite:///{path}", tmp_path / "server.log", **NO_AUTH).start()
    try:
        remote = expbook.open_store(server.url)
        with expbook.start_run(store=remote, capture=False) as run:
            for step in range(5):
                run.log({"loss": 1.0 / (step + 1)}, step=step)
                run.note(f"note {step}")
                run.log_params({f"p{step}": step})
            run.note("a forbidden note")
            run.note("the last note")
            run.set_name("kept")
        record = remote.run(run.id)
        remote.close()
    finally:
        server.stop()
    assert [n.text for n in record.notes] == [*(f"note {s}" for s in range(5)), "the last note"]
    assert record.params == {f"p{s}": s for s in range(5)}
    assert record.name == "kept" and record.metrics["loss"].count == 5
    assert record.status is RunStatus.FINISHED
    err = capfd.readouterr().err.splitlines()
    assert err == [
        f"expbook: dropped note 'a forbidden note' of run {run.id[:8]}: this note is refused"
    ]
    assert remote.journal.rejected() == []  # nothing else set aside


def test_login_saves_a_token_that_commands_and_runs_then_send(
    sqlite_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with expbook.open_store(sqlite_url) as local:
        _, secret = local.create_token("laptop")
        _, reader = local.create_token("dashboard", read_only=True)
    server = ServerProcess(sqlite_url, tmp_path / "server.log").start()  # with auth
    try:
        refused = run_cli("ls", store=server.url)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1
        assert "refused the token" in refused.stderr and "expbook login" in refused.stderr
        wrong = run_cli("login", server.url, "--token", "ebk_wrong")
        assert wrong.returncode == 1 and "refused this token" in wrong.stderr
        login = run_cli("login", server.url, "--token", secret)
        assert login.returncode == 0, login.stderr
        assert "'laptop' (read and write)" in login.stdout
        saved = Path(os.environ["XDG_CONFIG_HOME"]) / "expbook" / "credentials.json"
        assert saved.stat().st_mode & 0o777 == 0o600
        run_id = _log(expbook.open_store(server.url), 100)  # the saved token, no variable
        assert run_cli("show", run_id[:8], store=server.url).returncode == 0
        with expbook.open_store(server.url) as remote:
            _check_complete(remote, run_id, 100)
        orphan = Journal(server.url).own()  # a write left by another token's dead process
        left = WriteBatch(notes=[(1.0, "left")], batch_id="e" * 32)
        orphan.append(wire.frame({"op": "write", "run": run_id, "batch": left}))
        orphan.close(remove_if_empty=False)
        read_only = HttpStore(server.url, token=reader)
        assert read_only.run(run_id).name == "remote"  # reads go on; the write stays kept
        assert [n for _, n, _, _ in read_only.journal.status()] == [1]
        with pytest.raises(expbook.StoreError, match="403"):
            read_only.add_note(run_id, "not allowed")  # told at the call, not kept
        assert [n for _, n, _, _ in read_only.journal.status()] == [1]  # the orphan only
        read_only.close()
    finally:
        server.stop()


def test_a_revoked_token_keeps_the_runs_writes_in_the_journal(
    sqlite_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with expbook.open_store(sqlite_url) as local:
        _, secret = local.create_token("trainer")
    server = ServerProcess(
        sqlite_url, tmp_path / "server.log", env={"EXPBOOK_TOKEN_CACHE": "0"}
    ).start()
    try:
        remote = HttpStore(server.url, token=secret)
        run = expbook.start_run(store=remote, name="revoked")
        run.log({"x": 1.0}, step=0)
        assert run.flush(30)
        with expbook.open_store(sqlite_url) as local:
            local.revoke_token("trainer")
        run.log({"x": 2.0}, step=1)
        run.finish()
        remote.close()
        err = capfd.readouterr().err
        assert "refused the token" in err and "are kept in" in err
        with expbook.open_store(sqlite_url) as local:
            _, secret = local.create_token("trainer-2")
        synced = run_cli("sync", store=server.url, env={"EXPBOOK_TOKEN": secret})
        assert synced.returncode == 0, synced.stderr
        with expbook.open_store(sqlite_url) as local:
            record = local.run(run.id)
            assert record.status is RunStatus.FINISHED
            assert list(local.series(run.id, "x").values) == [1.0, 2.0]
    finally:
        server.stop()


def test_artifacts_logged_while_the_server_is_down_are_kept_and_sent(
    sqlite_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(
        sqlite_url, tmp_path / "server.log", args=("--no-auth", "--artifacts", str(tmp_path / "a"))
    )
    checkpoint = tmp_path / "last.pt"
    checkpoint.write_bytes(b"weights v1" * 1000)
    remote = expbook.open_store(server.url)
    run = expbook.start_run(store=remote, name="offline-artifacts")
    run.log_artifact(checkpoint)  # the server is down: kept in the journal, training goes on
    checkpoint.write_bytes(b"weights v2")  # overwritten right after, as each epoch does
    run.log_artifact(checkpoint, name="later.pt")
    run.finish()
    remote.close()
    status = json.loads(run_cli("sync", "--status", "--json", store=server.url).stdout)
    assert len(status["artifact_files"]) == 2
    server.start()
    try:
        synced = run_cli("sync", store=server.url)
        assert synced.returncode == 0, synced.stderr
        got = run_cli("artifact", "get", run.id[:8], "last.pt", "-o", str(tmp_path / "back.pt"),
                      store=server.url)  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert (tmp_path / "back.pt").read_bytes() == b"weights v1" * 1000
        with expbook.open_store(server.url) as again:
            assert again.blobs().remote.exists(again.list_artifacts(run.id)[1].sha256)
        assert Journal(server.url).blobs() == []
    finally:
        server.stop()


# --- the store API never answers bad input with a 500 -------------------------------------------


def test_the_store_api_answers_malformed_requests_with_4xx(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from expbook.server.app import create_app

    store = expbook.open_store(tmp_path / "s.db")
    run_id = store.create_run(RunSpec(name="a")).id
    client = TestClient(create_app(store), base_url="http://127.0.0.1")
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=12,
    )
    tagged = st.sampled_from(["RunQuery", "WriteBatch", "tuple", "set", "bytes", "array",
                              "RunStatus", "dict", "Popen"]).map(lambda t: {"$": t})  # fmt: skip
    arguments = st.lists(json_values | tagged | st.just(run_id), max_size=3)
    methods = st.sampled_from([*sorted(READS | CALLS), "write", "__init__", "close"])
    names = st.sampled_from(["query", "run_id", "key", "ref", "name", "spec", "sweep_id"])
    keywords = st.dictionaries(names, json_values | tagged, max_size=3)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(methods, arguments, keywords, st.sampled_from(["read", "call"]))
    def check(method: str, args: list, kwargs: dict, endpoint: str) -> None:
        body = json.dumps({"method": method, "args": args, "kwargs": kwargs})
        answer = client.post(f"/api/store/{endpoint}", content=body)
        assert answer.status_code < 500, (method, args, kwargs, answer.text)
        assert "error" in answer.json() or answer.status_code == 200

    check()

    frames = st.lists(json_values | tagged, max_size=3).map(
        lambda ops: wire.framed([wire.frame(op) for op in ops])
    )

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=64) | frames)
    def check_ingest(body: bytes) -> None:
        answer = client.post("/api/store/ingest", content=body)
        assert answer.status_code < 500 or answer.json()["unavailable"], answer.text

    check_ingest()
    store.close()


def test_db_upgrade_through_a_server_says_where_to_run_it() -> None:
    result = run_cli("db", "upgrade", "--store", "http://127.0.0.1:9")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "is an expbook server: upgrade its database where it is" in result.stderr
