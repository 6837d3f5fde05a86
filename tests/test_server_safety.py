"""``expbook ui`` is safe on a laptop: no DNS rebinding, no framing, bounded request bodies, and
every answer is one the OpenAPI schema documents (checked by schemathesis), on a real store."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import expbook
from expbook.model import TrialState
from expbook.server import create_app
from expbook.server.app import MAX_BODY_BYTES
from expbook.store import Store
from tests.browser import ui_server
from tests.helpers import EXPBOOK

BASE = "http://127.0.0.1:5005"
LOOPBACK = {"host": "127.0.0.1:5005"}  # a name the server answers to


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    with expbook.open_store(sqlite_url) as store:
        yield store


def few_runs(store: Store) -> None:
    """Three finished runs of one experiment with series, a note and a tag; one failed run."""
    tracker = expbook.Tracker(store)
    for lr in (0.001, 0.01, 0.1):
        with tracker.start_run(
            name=f"lr{lr}", experiment="sweep", tags=["sweep"], params={"lr": lr, "seed": 1}
        ) as run:
            for step in range(20):
                run.log({"train/loss": 1 / (step + 1) + lr, "valid/acc": lr * step}, step=step)
            run.note("first try")
    with pytest.raises(RuntimeError), tracker.start_run(name="broken", params={"lr": 1.0}):
        raise RuntimeError("diverged")
    store.update_experiment("sweep", hypothesis="a small lr is better")
    # the three runs as the finished trials of a sweep (the sweep pages' full answers)
    spec = {
        "method": "grid",
        "metric": {"name": "valid/acc", "goal": "maximize"},
        "parameters": {"lr": {"values": [0.001, 0.01, 0.1]}, "seed": {"value": 1}},
    }
    sweep = store.create_sweep("lr grid", spec, experiment="sweep")
    for run in reversed(store.runs(where="params.seed = 1")):
        store.add_trial(
            sweep.id, expected_version=store.get_sweep(sweep.id).version, params=run.params,
            config_key=f"lr={run.params['lr']}", worker=None, state=TrialState.FINISHED,
            run_id=run.id, values=[run.metric("valid/acc")],
        )  # fmt: skip


def client_of(store: Store, **options: object):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    return TestClient(create_app(store, **options), base_url=BASE)  # type: ignore[arg-type]


# --- DNS rebinding and framing ------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:5005", "127.0.0.1.evil.example", "localhost.:80x", ""]
)
def test_a_foreign_host_name_is_refused(sqlite_store: Store, host: str) -> None:
    """A page on evil.example whose name is made to resolve to 127.0.0.1 sends Host:
    evil.example: it must read nothing and write nothing."""
    few_runs(sqlite_store)
    with client_of(sqlite_store) as client:
        for method, path, body in [
            ("GET", "/api/runs", None),
            ("GET", "/", None),
            ("POST", "/api/runs/1/notes", {"text": "from evil.example"}),
        ]:
            answer = client.request(method, path, json=body, headers={"host": host})
            assert answer.status_code == 400, (method, path, answer.text)
            detail = answer.json()["detail"]
            assert "--allowed-hosts" in detail and repr(host) in detail
    assert [note.text for note in sqlite_store.run(1).notes] == ["first try"]


@pytest.mark.parametrize(
    "host", ["127.0.0.1:5005", "localhost:5005", "LocalHost", "[::1]:5005", "127.0.0.1"]
)
def test_loopback_names_are_served(sqlite_store: Store, host: str) -> None:
    with client_of(sqlite_store) as client:
        answer = client.get("/api/info", headers={"host": host})
        assert answer.status_code == 200, answer.text


def test_allowed_hosts_adds_names_and_a_star_allows_every_name(sqlite_store: Store) -> None:
    with client_of(sqlite_store, allowed_hosts=["ui.lab.example", "10.1.2.3"]) as client:
        for host in ("ui.lab.example:8080", "10.1.2.3", "localhost:5005"):
            assert client.get("/api/info", headers={"host": host}).status_code == 200, host
        assert client.get("/api/info", headers={"host": "evil.example"}).status_code == 400
    with client_of(sqlite_store, allowed_hosts=["*"]) as client:
        assert client.get("/api/info", headers={"host": "evil.example"}).status_code == 200


def test_a_write_from_another_site_is_refused(sqlite_store: Store) -> None:
    """A form or fetch from another site carries its Origin: writes need ours."""
    few_runs(sqlite_store)
    with client_of(sqlite_store) as client:
        refused = client.post(
            "/api/runs/1/notes", json={"text": "x"}, headers={"origin": "http://evil.example"}
        )
        assert refused.status_code == 403 and "evil.example" in refused.json()["detail"]
        ours = client.post("/api/runs/1/notes", json={"text": "ok"}, headers={"origin": BASE})
        assert ours.status_code == 200
    assert [note.text for note in sqlite_store.run(1).notes] == ["first try", "ok"]


def test_every_answer_forbids_framing_and_foreign_scripts(sqlite_store: Store) -> None:
    few_runs(sqlite_store)
    with client_of(sqlite_store) as client:
        for path in ("/", "/runs/1", "/api/docs", "/api/runs", "/static/common.js", "/nope"):
            headers = client.get(path).headers
            policy = headers["content-security-policy"]
            directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
            assert directives["frame-ancestors"] == "'none'", path
            assert directives["script-src"] == "'self'", path  # no inline script, no eval
            assert directives["default-src"] == "'none'", path
            assert directives["connect-src"] == "'self'", path
            assert headers["x-frame-options"] == "DENY"
            assert headers["x-content-type-options"] == "nosniff"
        # plotly's parallel coordinates (WebGL) compile code with new Function: that page only
        compare = client.get("/compare?runs=1,2").headers["content-security-policy"]
        assert "script-src 'self' 'unsafe-eval';" in compare
        assert "frame-ancestors 'none'" in compare


def test_a_name_in_the_address_is_text_in_the_page(sqlite_store: Store) -> None:
    with client_of(sqlite_store) as client:
        for path in ("/runs/<b>x", "/experiments/<img src=x>", "/sweeps/a&b<i>"):
            page = client.get(path).text
            title = page.split("<title>", 1)[1].split("</title>", 1)[0]
            assert "<" not in title and "&lt;" in title, (path, title)


# --- request sizes and conflicts ----------------------------------------------------------------


def test_a_body_over_the_limit_is_413_and_stores_nothing(sqlite_store: Store) -> None:
    few_runs(sqlite_store)
    huge = "x" * (MAX_BODY_BYTES + 1)
    with client_of(sqlite_store) as client:
        answer = client.post("/api/runs/1/notes", json={"text": huge})
        assert answer.status_code == 413
        assert f"{MAX_BODY_BYTES:,}" in answer.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"text": "'
            for _ in range(MAX_BODY_BYTES // 65536 + 1):
                yield b"y" * 65536
            yield b'"}'

        streamed = client.post(
            "/api/runs/1/notes", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413 and "detail" in streamed.json()
        answer = client.patch("/api/experiments/sweep", json={"conclusion": huge})
        assert answer.status_code == 413
        fits = client.post("/api/runs/1/notes", json={"text": "z" * (MAX_BODY_BYTES - 100)})
        assert fits.status_code == 200
    assert [len(note.text) for note in sqlite_store.run(1).notes] == [9, MAX_BODY_BYTES - 100]
    assert sqlite_store.get_experiment("sweep").conclusion is None


def test_renaming_an_experiment_to_a_taken_name_is_409(sqlite_store: Store) -> None:
    few_runs(sqlite_store)
    sqlite_store.create_experiment("other")
    with client_of(sqlite_store) as client:
        answer = client.patch("/api/experiments/other", json={"name": "sweep"})
        assert answer.status_code == 409, answer.text
        assert "'sweep'" in answer.json()["detail"]
        same = client.patch("/api/experiments/sweep", json={"name": "sweep"})
        assert same.status_code == 200
    names = sorted(e.name for e in sqlite_store.list_experiments())
    assert names == ["other", "sweep"]


# --- the schema is the contract -----------------------------------------------------------------


EXAMPLES = 25  # per operation and mode: ~15 s for the whole API on a 2-core machine


@pytest.mark.slow
def test_every_answer_is_documented_and_no_request_fails_the_server(sqlite_store: Store) -> None:
    """schemathesis, over /api/openapi.json: valid and invalid requests to every operation; no
    5xx, and every status, content type and body is one the schema documents."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation import GenerationMode

    few_runs(sqlite_store)
    app = create_app(sqlite_store)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, headers=LOOPBACK)
    problems = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            def check(case) -> None:  # type: ignore[no-untyped-def]
                case.call_and_validate(headers=LOOPBACK, excluded_checks=[
                    # a filter, a sort or a run ref can be valid text yet name nothing: 400/404
                    schemathesis.checks.positive_data_acceptance,
                ])  # fmt: skip

            try:
                check()
            except Unsatisfiable:  # no request of this mode exists (nothing to make invalid)
                continue
            except (Exception, BaseExceptionGroup) as exc:  # try all; list every problem
                problems.append(f"{operation.label} ({mode.value}): {exc}")
    assert not problems, "\n\n".join(problems)


# --- the real server ----------------------------------------------------------------------------


@pytest.mark.slow
def test_expbook_ui_refuses_a_foreign_host_unless_allowed(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    expbook.open_store(store).close()
    with ui_server(store) as base:
        assert httpx.get(f"{base}/api/info").status_code == 200
        rebound = httpx.get(f"{base}/api/info", headers={"host": "evil.example"})
        assert rebound.status_code == 400
    with ui_server(store, extra=["--allowed-hosts", "ui.lab.example,10.9.8.7"]) as base:
        for host in ("ui.lab.example", "10.9.8.7:80", "localhost"):
            assert httpx.get(f"{base}/api/info", headers={"host": host}).status_code == 200
        assert httpx.get(f"{base}/api/info", headers={"host": "x.example"}).status_code == 400


def test_expbook_ui_help_documents_allowed_hosts() -> None:
    shown = subprocess.run(
        [EXPBOOK, "ui", "--help"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    assert "--allowed-hosts" in shown.stdout
