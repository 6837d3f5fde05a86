"""Bad input is refused where it enters, naming it (issue 10, section 4).

Text a database cannot store (a lone surrogate, which UTF-8 cannot encode; NUL, which
PostgreSQL refuses) and numbers a float cannot hold are refused by the call that brings them in,
with an ``InvalidKeyError``/``InvalidValueError`` that names the key, instead of failing later on
the writer thread and taking the rest of the flush with them. Real stores on both backends, real
processes for the CLI and for a program that goes on after a refused call.
"""

from __future__ import annotations

import json
import math
import subprocess
import textwrap
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import expbook
from expbook import InvalidKeyError, InvalidValueError
from expbook.store import Store
from tests.helpers import EXPBOOK, run_python

Refusal = (InvalidKeyError, InvalidValueError)
SURROGATE = "\ud800"
NUL = "\x00"


def _assert_names(error: BaseException, *names: str) -> None:
    message = str(error)
    assert isinstance(error, Refusal), f"{type(error).__name__}: {message}"
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"
    assert len(message) < 400, message
    message.encode("utf-8")  # printable as it is: the bad character is shown escaped


# --- the live Run --------------------------------------------------------------------------------

RUN_CALLS: dict[str, tuple[Callable[[Any, str], None], str]] = {
    # entry point: (call with the bad text, what the error must name)
    "log key": (lambda run, bad: run.log({f"loss{bad}": 1.0}), "loss"),
    "summary key": (lambda run, bad: run.summary.set(f"acc{bad}", 1.0), "acc"),
    "param key": (lambda run, bad: run.log_params({f"lr{bad}": 1}), "lr"),
    "nested param key": (
        lambda run, bad: run.log_params({"model": {f"hid{bad}": 1}}),
        "model.hid",
    ),
    "param value": (lambda run, bad: run.log_params({"opt": f"adam{bad}"}), "'opt'"),
    "nested param value": (
        lambda run, bad: run.log_params({"model": {"layers": ["gru", {"act": f"relu{bad}"}]}}),
        "'model.layers'",
    ),
    "param dict key inside a list": (
        lambda run, bad: run.log_params({"sched": [{f"gamma{bad}": 0.5}]}),
        "'sched'",
    ),
    "note": (lambda run, bad: run.note(f"hello {bad}"), "note 'hello "),
    "tag": (lambda run, bad: run.tag("ok", f"t{bad}"), "tag 't"),
    "untag": (lambda run, bad: run.untag(f"t{bad}"), "tag 't"),
    "set_name": (lambda run, bad: run.set_name(f"n{bad}"), "name 'n"),
    "attach name": (lambda run, bad: run.attach(f"f{bad}.txt", b"x"), "attachment name 'f"),
}
# NUL in a metric key, a tag or a run name was refused already, and named.
_NAMED_BEFORE = {("log key", "nul"), ("summary key", "nul"), ("param key", "nul"),
                 ("nested param key", "nul"), ("tag", "nul"), ("set_name", "nul")}  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "bad"),
    [
        pytest.param(entry, bad, id=f"{entry}-{kind}")
        for entry in RUN_CALLS
        for kind, bad in (("surrogate", SURROGATE), ("nul", NUL))
        if (entry, kind) not in _NAMED_BEFORE
    ],
)
def test_run_calls_refuse_unstorable_text_and_the_run_stays_whole(
    tracker: expbook.Tracker, store: Store, entry: str, bad: str
) -> None:
    call, named = RUN_CALLS[entry]
    with tracker.start_run(name="r", params={"lr": 0.1}, tags=["base"], capture=False) as run:
        run.log({"loss": 1.0})
        with pytest.raises(Exception) as refused:
            call(run, bad)
        _assert_names(refused.value, named, repr(bad)[1:-1])
        run.log({"loss": 0.5})
        run.note("after the refusal")
    record = store.run(run.id)
    assert record.status is expbook.RunStatus.FINISHED
    assert record.name == "r" and dict(record.params) == {"lr": 0.1}
    assert record.tags == ("base",)
    assert [note.text for note in record.notes] == ["after the refusal"]
    assert store.series(run.id, "loss").values.tolist() == [1.0, 0.5]


def test_attached_text_that_is_not_unicode_is_refused_naming_the_attachment(
    tracker: expbook.Tracker,
) -> None:
    with tracker.start_run(name="r", capture=False) as run:
        with pytest.raises(Exception) as refused:
            run.attach("config.yaml", f"lr: 0.1 {SURROGATE}")
        _assert_names(refused.value, "config.yaml", "\\ud800")
        run.attach("notes.bin", b"\x00\xff")  # bytes are stored as they are


START_FIELDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "name": lambda bad: {"name": f"n{bad}"},
    "experiment": lambda bad: {"experiment": f"e{bad}"},
    "kind": lambda bad: {"kind": f"eval{bad}"},
    "tags": lambda bad: {"tags": ["ok", f"t{bad}"]},
    "params key": lambda bad: {"params": {f"lr{bad}": 1}},
    "params value": lambda bad: {"params": {"data": {"path": f"/d{bad}"}}},
}
_START_NAMED_BEFORE = {("name", "nul"), ("kind", "nul"), ("params key", "nul"), ("tags", "nul")}


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        pytest.param(field, bad, id=f"{field}-{kind}")
        for field in START_FIELDS
        for kind, bad in (("surrogate", SURROGATE), ("nul", NUL))
        if (field, kind) not in _START_NAMED_BEFORE
    ],
)
def test_start_run_refuses_unstorable_text_in_every_field(
    tracker: expbook.Tracker, store: Store, field: str, bad: str
) -> None:
    with pytest.raises(Exception) as refused:
        tracker.start_run(capture=False, **START_FIELDS[field](bad))
    _assert_names(refused.value, repr(bad)[1:-1])
    assert store.count_runs(expbook.store.RunQuery()) == 0
    assert store.list_experiments() == []


def test_a_program_goes_on_after_refused_calls_and_its_run_is_whole(store_url: str) -> None:
    program = textwrap.dedent(
        """
        import sys
        import expbook

        bad = "caf\\udce9"  # how Python decodes the non-UTF-8 byte 0xe9 in argv or a file name
        with expbook.start_run(name="train", params={"lr": 0.1}, store=sys.argv[1]) as run:
            for step in range(100):
                run.log({"loss": 1 / (step + 1)})
            run.note("before")
            for call in (lambda: run.note(bad), lambda: run.log_params({"data": bad}),
                         lambda: run.tag(bad), lambda: run.log({bad: 1.0}),
                         lambda: run.set_name(bad)):
                try:
                    call()
                except expbook.ExpbookError as exc:
                    print("refused:", exc)
            for step in range(100, 200):
                run.log({"loss": 1 / (step + 1)})
            run.note("after")
            run.tag("done")
        print(run.id)
        """
    )
    done = run_python(program, store_url)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing was lost, so nothing to report
    lines = done.stdout.splitlines()
    assert len([line for line in lines if line.startswith("refused:")]) == 5
    assert all("caf\\udce9" in line for line in lines[:5])
    store = expbook.open_store(store_url)
    record = store.run(lines[-1])
    assert record.status is expbook.RunStatus.FINISHED and record.name == "train"
    assert [note.text for note in record.notes] == ["before", "after"]
    assert dict(record.params) == {"lr": 0.1} and record.tags == ("done",)
    assert len(store.series(record.id, "loss")) == 200
    store.close()


# --- the store's conveniences, the CLI and the web API -------------------------------------------

STORE_CALLS: dict[str, tuple[Callable[[Store, str, str], Any], str]] = {
    "add_note": (lambda s, run, bad: s.add_note(run, f"x{bad}"), "note 'x"),
    "edit_note": (lambda s, run, bad: s.edit_note(run, s.run(run).notes[0].id, f"x{bad}"), "'x"),
    "add_tags": (lambda s, run, bad: s.add_tags(run, f"t{bad}"), "tag 't"),
    "remove_tags": (lambda s, run, bad: s.remove_tags(run, f"t{bad}"), "tag 't"),
    "set_params key": (lambda s, run, bad: s.set_params(run, {f"k{bad}": 1}), "param key 'k"),
    "set_params value": (lambda s, run, bad: s.set_params(run, {"k": [f"v{bad}"]}), "'k'"),
    "set_metric key": (lambda s, run, bad: s.set_metric(run, f"m{bad}", 1.0), "metric key 'm"),
    "update_run name": (lambda s, run, bad: s.update_run(run, name=f"n{bad}"), "name 'n"),
    "update_run experiment": (
        lambda s, run, bad: s.update_run(run, experiment=f"e{bad}"),
        "experiment name 'e",
    ),
    "create_experiment name": (lambda s, run, bad: s.create_experiment(f"e{bad}"), "'e"),
    "create_experiment hypothesis": (
        lambda s, run, bad: s.create_experiment("q", hypothesis=f"h{bad}"),
        "hypothesis 'h",
    ),
    "update_experiment conclusion": (
        lambda s, run, bad: s.update_experiment("hidden size", conclusion=f"c{bad}"),
        "conclusion 'c",
    ),
}
_STORE_NAMED_BEFORE = {("add_tags", "nul"), ("set_params key", "nul"), ("set_metric key", "nul")}


@pytest.mark.parametrize(
    ("entry", "bad"),
    [
        pytest.param(entry, bad, id=f"{entry}-{kind}")
        for entry in STORE_CALLS
        for kind, bad in (("surrogate", SURROGATE), ("nul", NUL))
        if (entry, kind) not in _STORE_NAMED_BEFORE
    ],
)
def test_store_conveniences_refuse_unstorable_text(
    tracker: expbook.Tracker, store: Store, entry: str, bad: str
) -> None:
    with tracker.start_run(name="r", experiment="hidden size", tags=["t"], capture=False) as run:
        run.note("first")
    before = store.run(run.id)
    experiments = store.list_experiments()
    call, named = STORE_CALLS[entry]
    with pytest.raises(Exception) as refused:
        call(store, run.id, bad)
    _assert_names(refused.value, named, repr(bad)[1:-1])
    assert store.run(run.id) == before
    assert store.list_experiments() == experiments


CLI_CALLS = {
    "note": ["note", "1", b"caf\xe9"],
    "tag": ["tag", "1", b"caf\xe9"],
    "set-metric": ["set-metric", "1", b"acc/caf\xe9", "0.5"],
    "experiment new": ["experiment", "new", b"caf\xe9?"],
    "experiment conclude": ["experiment", "conclude", "hidden size", b"caf\xe9"],
}


@pytest.mark.parametrize("command", list(CLI_CALLS))
def test_cli_refuses_arguments_that_are_not_unicode_in_one_line(
    sqlite_url: str, command: str
) -> None:
    """Arguments with bytes that are not UTF-8 (a Latin-1 terminal) reach Python as lone
    surrogates; the command says which argument, in one line, and stores nothing."""
    with expbook.Tracker(sqlite_url).start_run(
        name="r", experiment="hidden size", capture=False
    ) as run:
        run.note("first")
    before = expbook.open_store(sqlite_url).run(run.id)
    done = subprocess.run(
        [EXPBOOK, *CLI_CALLS[command], "--store", sqlite_url],
        capture_output=True,
        timeout=120,
        check=False,
    )
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode != 0
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("error: ") and "caf\\udce9" in stderr, stderr
    after = expbook.open_store(sqlite_url)
    assert after.run(run.id) == before
    assert [e.name for e in after.list_experiments()] == ["hidden size"]
    assert after.get_experiment("hidden size").conclusion is None


def test_web_api_writes_refuse_unstorable_text_with_400(
    tracker: expbook.Tracker, store: Store
) -> None:
    from fastapi.testclient import TestClient

    from expbook.server import create_app

    with tracker.start_run(name="r", experiment="hidden size", capture=False) as run:
        run.note("first")
    before = store.run(run.id)
    JSON = {"content-type": "application/json"}
    requests = [
        ("POST", "/api/runs/1/notes", {"text": "a\x00b"}, "note"),
        ("PUT", f"/api/runs/1/notes/{before.notes[0].id}", {"text": "a\x00b"}, "note"),
        ("POST", "/api/runs/1/tags", {"tags": ["a\x00b"]}, "tag"),
        ("PATCH", "/api/runs/1", {"name": "a\x00b"}, "name"),
        ("PATCH", "/api/runs/1", {"experiment": "a\x00b"}, "experiment"),
        ("PATCH", "/api/experiments/hidden size", {"conclusion": "a\x00b"}, "conclusion"),
    ]
    with TestClient(create_app(store), base_url="http://127.0.0.1") as client:
        for method, path, body, named in requests:
            response = client.request(method, path, content=json.dumps(body), headers=JSON)
            assert response.status_code == 400, (path, response.text)
            assert named in response.json()["detail"] and "\\x00" in response.json()["detail"]
            surrogate = json.dumps(body).replace("\\u0000", "\\ud800")
            response = client.request(method, path, content=surrogate, headers=JSON)
            assert response.status_code in (400, 422), (path, response.text)
    assert store.run(run.id) == before
    assert store.get_experiment("hidden size").conclusion is None


# --- numbers -------------------------------------------------------------------------------------

UNREPRESENTABLE = {
    "Decimal sNaN": Decimal("sNaN"),
    "numpy longdouble overflow": np.longdouble(10) ** 400,
    "int beyond float range": 10**400,
    "Decimal overflow": Decimal("1e400"),
    "Fraction overflow": Fraction(10**400),
}
NUMBER_CALLS: dict[str, Callable[[Any, Store, Any], None]] = {
    "log": lambda run, store, value: run.log({"acc/top1": value}),
    "summary": lambda run, store, value: run.summary.set("acc/top1", value),
    "set_metric": lambda run, store, value: store.set_metric(run.id, "acc/top1", value),
    "param": lambda run, store, value: run.log_params({"acc": {"top1": value}}),
}


def test_numbers_a_float_cannot_hold_are_refused_alike_naming_the_key(
    tracker: expbook.Tracker, store: Store
) -> None:
    problems = []
    with tracker.start_run(name="r", capture=False) as run:
        for label, value in UNREPRESENTABLE.items():
            for entry, call in NUMBER_CALLS.items():
                if entry == "param" and type(value) is int:
                    continue  # a param keeps an int exactly, as JSON (below)
                named = "acc.top1" if entry == "param" else "acc/top1"
                try:
                    call(run, store, value)
                except InvalidValueError as exc:
                    if named not in str(exc) or len(str(exc)) > 200:
                        problems.append(f"{entry} {label}: {exc}")
                except Exception as exc:  # the point of the test
                    problems.append(f"{entry} {label}: {type(exc).__name__}: {exc}")
                else:
                    problems.append(f"{entry} {label}: accepted")
        # real infinities and NaN of every type are still valid
        for value in (np.longdouble("inf"), Decimal("-Infinity"), Decimal("NaN"), -math.inf):
            run.log({"edge": value})
        run.log_params({"seed": 10**400, "lr": Decimal("0.001")})
    assert problems == []
    assert store.run(run.id).params == {"seed": 10**400, "lr": 0.001}
    values = store.series(run.id, "edge").values.tolist()
    assert values[0] == math.inf and values[1] == -math.inf and math.isnan(values[2])
    assert store.run(run.id).metrics.keys() == {"edge"}


def test_negative_zero_reads_back_as_negative_zero(tracker: expbook.Tracker, store: Store) -> None:
    """SQLite writes a whole REAL as an integer, so -0.0 became 0 there until the summary value
    columns lost their REAL affinity (migration 0003)."""
    with tracker.start_run(name="r", capture=False) as run:
        run.summary["delta"] = -0.0
        run.log({"loss": 1.0}, step=0)
        run.log({"loss": -0.0}, step=1)
    store.set_metric(run.id, "manual", -0.0)
    metrics = store.run(run.id).metrics
    for key in ("delta", "manual"):
        assert math.copysign(1, metrics[key].value) == -1, key
        assert math.copysign(1, metrics[key].min) == -1, key
    assert math.copysign(1, metrics["loss"].value) == -1
    assert math.copysign(1, metrics["loss"].min) == -1  # -0.0 is the smallest point
    assert metrics["loss"].max == 1.0


def test_an_over_long_key_error_shows_a_prefix_and_the_length(
    tracker: expbook.Tracker, store: Store
) -> None:
    key = "k" * 10_000
    with tracker.start_run(name="r", capture=False) as run:
        for call in (
            lambda: run.log({key: 1.0}),
            lambda: run.summary.set(key, 1.0),
            lambda: run.log_params({key: 1}),
            lambda: store.set_metric(run.id, key, 1.0),
        ):
            with pytest.raises(InvalidKeyError) as refused:
                call()
            message = str(refused.value)
            assert len(message) < 200, message
            assert "'kkkkkkkkkk" in message and "10000 characters" in message


def test_a_failure_whose_message_is_not_unicode_still_ends_the_run(store_url: str) -> None:
    """A traceback is kept, not refused: text no store can hold becomes U+FFFD, and the run
    still ends as failed (before, the final status was lost in the writer)."""
    program = textwrap.dedent(
        """
        import sys
        import expbook

        try:
            with expbook.start_run(name="train", store=sys.argv[1]) as run:
                print(run.id)
                raise FileNotFoundError("no file /data/caf\\udce9.csv")
        except FileNotFoundError:
            pass
        """
    )
    done = run_python(program, store_url)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    store = expbook.open_store(store_url)
    record = store.run(done.stdout.strip())
    assert record.status is expbook.RunStatus.FAILED
    assert "no file /data/caf\ufffd.csv" in record.error
    store.close()
