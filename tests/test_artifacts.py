"""Artifacts: files kept by content in the store's artifact location (fsspec), names and hashes
in the database, on SQLite and PostgreSQL; the CLI, ``expbook run --artifacts`` and the faults.
The tests that take ``located`` run with the location in a folder and on a local S3 server
(moto, tests/s3server.py)."""

from __future__ import annotations

import hashlib
import os
import sys
import time
import uuid
from pathlib import Path

import pytest

import expbook
from expbook import artifacts
from expbook.errors import ArtifactNotFoundError, InvalidValueError, StoreError
from expbook.store import Store
from expbook.store.base import ARTIFACTS_SETTING
from tests.helpers import run_cli


class Location:
    """An artifact location under test, looked at through fsspec (not through expbook)."""

    def __init__(self, url: str) -> None:
        import fsspec.core

        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)

    def blobs(self) -> list[str]:
        """The names (sha256) of the blobs stored there."""
        self.fs.invalidate_cache()
        top = f"{self.root}/sha256"
        found = self.fs.find(top) if self.fs.exists(top) else []
        return sorted(path.rsplit("/", 1)[-1] for path in found)

    def leftovers(self) -> list[str]:
        """Temporary files left behind."""
        self.fs.invalidate_cache()
        top = f"{self.root}/tmp"
        return list(self.fs.find(top)) if self.fs.exists(top) else []


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["folder", "s3"])
def location_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty artifact location: a folder, or a bucket on the local S3 server."""
    if request.param == "s3":
        return str(request.getfixturevalue("s3_url"))
    return str(tmp_path / "blobs")


@pytest.fixture
def located(store: Store, location_url: str) -> Location:
    """The store with its artifact location set (PostgreSQL has no default)."""
    store.set_setting(ARTIFACTS_SETTING, location_url)
    return Location(location_url)


def test_files_and_folders_are_kept_once_by_content(
    store: Store, located: Location, tmp_path: Path
) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.pt").write_bytes(b"weights" * 1000)
    (tmp_path / "ckpt" / "sub").mkdir()
    (tmp_path / "ckpt" / "sub" / "opt.pt").write_bytes(b"adam")
    (tmp_path / "same.pt").write_bytes(b"weights" * 1000)
    with expbook.Tracker(store).start_run(name="a") as run:
        kept = run.log_artifact(tmp_path / "ckpt")
        run.log_artifact(tmp_path / "same.pt", name="copies/same.pt")
    assert [a.name for a in kept] == ["ckpt/model.pt", "ckpt/sub/opt.pt"]
    listed = store.list_artifacts(run.id)
    assert [(a.name, a.size) for a in listed] == [
        ("ckpt/model.pt", 7000), ("ckpt/sub/opt.pt", 4), ("copies/same.pt", 7000),
    ]  # fmt: skip
    assert listed[0].sha256 == _sha(b"weights" * 1000) == listed[2].sha256
    assert len(located.blobs()) == 2  # identical content stored once
    assert artifacts.read(store, run.id, "ckpt/sub/opt.pt")[1] == b"adam"
    assert located.leftovers() == []


def test_logging_a_name_again_replaces_it(store: Store, located: Location, tmp_path: Path) -> None:
    checkpoint = tmp_path / "last.pt"
    with expbook.Tracker(store).start_run(name="a") as run:
        for epoch in range(3):
            checkpoint.write_bytes(f"epoch {epoch}".encode())
            run.log_artifact(checkpoint)  # the file may change right after: it was copied
    [only] = store.list_artifacts(run.id)
    assert artifacts.read(store, run.id, only.name)[1] == b"epoch 2"


def test_gc_removes_the_old_versions_no_run_holds_once_they_are_old_enough(
    store: Store, located: Location, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "last.pt"
    with expbook.Tracker(store).start_run(name="a") as run:
        for epoch in range(3):
            checkpoint.write_bytes(f"epoch {epoch}".encode())
            run.log_artifact(checkpoint)
    with expbook.Tracker(store).start_run(name="b") as other:
        checkpoint.write_bytes(b"epoch 0")
        other.log_artifact(checkpoint, name="first.pt")  # another run holds epoch 0's blob
    assert len(located.blobs()) == 3
    found = artifacts.collect_garbage(store)  # all younger than an hour: nothing goes yet
    assert (found.removed, found.held, found.young) == (0, 2, 1)
    later = time.time() + 2 * artifacts.GC_MIN_AGE
    dry = artifacts.collect_garbage(store, dry_run=True, now=later)
    assert (dry.removed, dry.removed_bytes) == (1, len(b"epoch 1")) and len(located.blobs()) == 3
    done = artifacts.collect_garbage(store, now=later)
    assert (done.removed, done.held, done.young) == (1, 2, 0)
    assert _sha(b"epoch 1") not in located.blobs()
    assert artifacts.read(store, run.id, "last.pt")[1] == b"epoch 2"
    assert artifacts.read(store, other.id, "first.pt")[1] == b"epoch 0"


def test_cli_gc(tmp_path: Path, location_url: str) -> None:
    store = str(tmp_path / ".expbook" / "expbook.db")
    expbook.open_store(store).close()
    set_ = run_cli("artifact", "location", location_url, store=store)
    assert set_.stdout.strip() == f"{location_url} (store setting)", set_.stderr
    checkpoint = tmp_path / "last.pt"
    with expbook.Tracker(store).start_run(name="a") as run:
        for epoch in range(2):
            checkpoint.write_bytes(f"epoch {epoch}".encode())
            run.log_artifact(checkpoint)
    dry = run_cli("artifact", "gc", "--dry-run", "--min-age", "0", store=store)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith(f"would remove 1 blob no run holds (7 B) from {location_url};")
    assert "1 held by runs" in dry.stdout
    young = run_cli("artifact", "gc", store=store)
    assert "removed 0 blobs" in young.stdout and "1 unheld but newer than 3600 s" in young.stdout
    done = run_cli("artifact", "gc", "--min-age", "0", store=store)
    assert done.stdout.startswith("removed 1 blob no run holds (7 B)")
    assert Location(location_url).blobs() == [_sha(b"epoch 1")]
    bad = run_cli("artifact", "gc", "--min-age", "-1", store=store)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_deleting_runs_removes_the_blobs_no_other_run_holds(
    store: Store, located: Location, tmp_path: Path
) -> None:
    (tmp_path / "shared.bin").write_bytes(b"shared")
    (tmp_path / "own.bin").write_bytes(b"own")
    tracker = expbook.Tracker(store)
    with tracker.start_run(name="a") as first:
        first.log_artifact(tmp_path / "shared.bin")
        first.log_artifact(tmp_path / "own.bin")
    with tracker.start_run(name="b") as second:
        second.log_artifact(tmp_path / "shared.bin", name="renamed.bin")
    assert len(located.blobs()) == 2
    store.delete_run(first.id)
    assert located.blobs() == [_sha(b"shared")]
    assert artifacts.read(store, second.id, "renamed.bin")[1] == b"shared"
    store.delete_run(second.id)
    assert located.blobs() == []


def test_a_sqlite_store_keeps_artifacts_next_to_it_by_default(tmp_path: Path) -> None:
    store = expbook.open_store(tmp_path / ".expbook" / "expbook.db")
    assert store.artifact_location() == (str(tmp_path / ".expbook" / "artifacts"), "default")
    other = expbook.open_store(tmp_path / "runs.db")
    assert other.artifact_location() == (str(tmp_path / "runs.db-artifacts"), "default")


def test_a_postgresql_store_without_a_location_says_how_to_set_one(postgres_url: str) -> None:
    store = expbook.open_store(postgres_url)
    with pytest.raises(StoreError, match=r"no artifact location; .*expbook artifact location"):
        store.artifact_location()


def test_any_fsspec_url_set_per_store(store: Store, tmp_path: Path) -> None:
    import fsspec

    url = f"memory://expbook-test-{uuid.uuid4().hex}"
    store.set_setting(ARTIFACTS_SETTING, url)
    (tmp_path / "plot.png").write_bytes(b"\x89PNG...")
    with expbook.Tracker(store).start_run(name="a") as run:
        [kept] = run.log_artifact(tmp_path / "plot.png")
    memory = fsspec.filesystem("memory")
    assert memory.cat(store.blobs().path(kept.sha256)) == b"\x89PNG..."
    assert not (tmp_path / "store" / "artifacts").exists()  # nothing went to the default
    written = artifacts.fetch(store, run.id, "plot.png", tmp_path / "back.png")
    assert Path(written[0]).read_bytes() == b"\x89PNG..."


def test_the_store_setting_wins_over_the_variable(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPBOOK_ARTIFACTS", str(tmp_path / "from-env"))
    assert store.artifact_location() == (str(tmp_path / "from-env"), "EXPBOOK_ARTIFACTS")
    store.set_setting(ARTIFACTS_SETTING, str(tmp_path / "team"))
    assert store.artifact_location() == (str(tmp_path / "team"), "store setting")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../outside.pt", "escapes its run"),
        ("ckpt/../../x", "escapes its run"),
        ("/etc/passwd", "is absolute"),
        ("C:/x", "is absolute"),
        ("a\\b", "backslash"),
        ("a//b", "empty"),
        ("./a", "'.'"),
        ("", "invalid artifact name"),
    ],
)
def test_names_cannot_escape_their_run(name: str, problem: str) -> None:
    with pytest.raises(InvalidValueError, match=problem) as error:
        artifacts.check_artifact_name(name)
    assert "\n" not in str(error.value)


def test_faults_are_one_line_errors(store: Store, located: Location, tmp_path: Path) -> None:
    with expbook.Tracker(store).start_run(name="a") as run:
        with pytest.raises(InvalidValueError, match="no such file or folder"):
            run.log_artifact(tmp_path / "missing.pt")
        (tmp_path / "x").write_text("x")
        with pytest.raises(InvalidValueError, match=r"'\.\./x' escapes its run"):
            run.log_artifact(tmp_path / "x", name="../x")
    missing = r"run #1 has no artifact 'nope' \(it has none\)"
    with pytest.raises(ArtifactNotFoundError, match=missing):
        artifacts.fetch(store, run.id, "nope")


def test_cli_put_ls_get_and_its_faults(tmp_path: Path) -> None:
    store = str(tmp_path / ".expbook" / "expbook.db")
    with expbook.Tracker(store).start_run(name="a"):
        pass
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "loss.png").write_bytes(b"png")
    (tmp_path / "notes.txt").write_text("hello\n")
    put = run_cli("artifact", "put", "1", str(tmp_path / "plots"), store=store)
    assert put.returncode == 0, put.stderr
    assert "kept plots/loss.png (3 B)" in put.stdout
    assert run_cli("artifact", "put", "1", str(tmp_path / "notes.txt"), "--name", "docs/n.txt",
                   store=store).returncode == 0  # fmt: skip
    listed = run_cli("artifact", "ls", "1", store=store)
    assert "docs/n.txt" in listed.stdout and "plots/loss.png" in listed.stdout
    assert hashlib.sha256(b"png").hexdigest()[:12] in listed.stdout
    as_json = run_cli("artifact", "ls", "1", "--json", store=store)
    assert '"sha256": "' + hashlib.sha256(b"png").hexdigest() in as_json.stdout
    got = run_cli("artifact", "get", "1", "plots", "-o", str(tmp_path / "back"), store=store)
    assert got.returncode == 0 and (tmp_path / "back" / "loss.png").read_bytes() == b"png"
    got = run_cli("artifact", "get", "1", "docs/n.txt", cwd=tmp_path, store=store)
    assert got.returncode == 0 and (tmp_path / "n.txt").read_text() == "hello\n"
    faults = {
        "missing source": (["put", "1", str(tmp_path / "nope.pt")], "no such file or folder"),
        "dot-dot name": (["put", "1", str(tmp_path / "notes.txt"), "--name", "../n.txt"],
                         "'../n.txt' escapes its run"),
        "unknown artifact": (["get", "1", "model.pt"], "run #1 has no artifact 'model.pt'"),
    }  # fmt: skip
    for what, (args, message) in faults.items():
        result = run_cli("artifact", *args, store=store)
        assert result.returncode == 1, what
        assert result.stderr.count("\n") == 1 and message in result.stderr, (what, result.stderr)


def test_cli_location_sets_it_for_the_store(tmp_path: Path) -> None:
    store = str(tmp_path / ".expbook" / "expbook.db")
    expbook.open_store(store).close()
    shown = run_cli("artifact", "location", store=store)
    assert shown.stdout.strip() == f"{tmp_path / '.expbook' / 'artifacts'} (default)"
    set_ = run_cli("artifact", "location", "memory://team", store=store)
    assert set_.stdout.strip() == "memory://team (store setting)"
    bad = run_cli("artifact", "location", "nosuchprotocol://x", store=store)
    assert bad.returncode == 1 and "nosuchprotocol" in bad.stderr
    assert expbook.open_store(store).artifact_location() == ("memory://team", "store setting")


PROGRAM = """
import os, sys, time
os.makedirs("checkpoints", exist_ok=True)
os.makedirs("plots/epoch", exist_ok=True)
with open("checkpoints/early.pt", "wb") as f:
    f.write(b"early")
deadline = time.time() + 60  # until the recorder has kept it (while the program runs)
while time.time() < deadline and not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
os.remove("checkpoints/early.pt")  # gone before the end: only a scan while running kept it
with open("checkpoints/last.pt", "wb") as f:
    f.write(b"last")
with open("plots/epoch/1.png", "wb") as f:
    f.write(b"png")
print("done")
"""


def test_expbook_run_keeps_files_the_program_writes(tmp_path: Path) -> None:
    store = str(tmp_path / ".expbook" / "expbook.db")
    program = tmp_path / "train.py"
    program.write_text(PROGRAM)
    marker = tmp_path / "kept"
    # the test stands in for a slow program: it waits until the early checkpoint is in the
    # store, polling from a second process
    waiter = tmp_path / "wait.py"
    waiter.write_text(
        "import sys, time, expbook\n"
        "s = expbook.open_store(sys.argv[1])\n"
        "for _ in range(1200):\n"
        "    runs = s.runs()\n"
        "    names = [a.name for a in s.list_artifacts(runs[0].id)] if runs else []\n"
        "    if 'checkpoints/early.pt' in names:\n"
        "        open(sys.argv[2], 'w').close(); break\n"
        "    time.sleep(0.05)\n"
    )  # fmt: skip
    import subprocess

    watching = subprocess.Popen([sys.executable, str(waiter), store, str(marker)])
    result = run_cli(
        "run", "--artifacts", "checkpoints/*.pt", "--artifacts", "plots/",
        "--artifacts", "missing/*.bin", "--", sys.executable, str(program), str(marker),
        store=store, cwd=tmp_path, env={"EXPBOOK_ARTIFACT_INTERVAL": "0.2"},
    )  # fmt: skip
    watching.wait(timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--artifacts 'missing/*.bin': no file matched" in result.stderr
    opened = expbook.open_store(store)
    run = opened.run("last")
    names = [a.name for a in opened.list_artifacts(run.id)]
    kept = {name: artifacts.read(opened, run.id, name)[1] for name in names}
    assert kept == {
        "checkpoints/early.pt": b"early", "checkpoints/last.pt": b"last",
        "plots/epoch/1.png": b"png",
    }  # fmt: skip
    assert any("no file matched" in note.text for note in run.notes)


def test_fetch_never_writes_outside_the_target(
    store: Store, located: Location, tmp_path: Path
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    with expbook.Tracker(store).start_run(name="a") as run:
        run.log_artifact(tmp_path / "d", name="out")
    target = tmp_path / "fetched"
    written = artifacts.fetch(store, run.id, "out", target)
    assert [os.path.relpath(w, target) for w in written] == ["a.txt"]


def test_the_report_embeds_the_image_artifacts_a_run_logged(tmp_path: Path) -> None:
    from expbook.report.write import write_report
    from tests.test_ui_artifacts import png

    store = expbook.open_store(tmp_path / "expbook.db")
    (tmp_path / "confusion.png").write_bytes(png())
    (tmp_path / "model.pt").write_bytes(b"weights")
    with expbook.Tracker(store).start_run(name="a", experiment="images") as run:
        run.log({"valid/acc": 0.5})
        run.log_artifact(tmp_path / "confusion.png", name="plots/confusion.png")
        run.log_artifact(tmp_path / "model.pt")
    written = write_report(store, tmp_path / "notebook.md", html=True)
    text = written.markdown.read_text()
    file = f"artifact-{hashlib.sha256(png()).hexdigest()[:16]}.png"
    assert f"![plots/confusion.png](notebook_files/{file})" in text
    assert (tmp_path / "notebook_files" / file).read_bytes() == png()
    assert "model.pt" not in text  # only images are embedded
    page = written.html.read_text() if written.html else ""
    assert "data:image/png;base64," in page and f"notebook_files/{file}" not in page


def test_rerun_takes_artifacts_too(tmp_path: Path) -> None:
    store = str(tmp_path / ".expbook" / "expbook.db")
    program = tmp_path / "write.py"
    program.write_text("open('out.txt', 'w').write('written')\n")
    first = run_cli("run", "--", sys.executable, str(program), store=store, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_cli("rerun", "last", "--artifacts", "out.txt", store=store, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    opened = expbook.open_store(store)
    run = opened.run("last")
    assert run.number == 2 and [a.name for a in opened.list_artifacts(run.id)] == ["out.txt"]
