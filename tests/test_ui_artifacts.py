"""A run's artifacts on its page in a real browser (Chromium): listed with size and hash, an
image and a text file previewed inline, everything downloadable; and through the API."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest

import expbook
from tests.browser import chromium, require_chromium, ui_page, ui_server

pytestmark = pytest.mark.slow


def png(width: int = 4, height: int = 3) -> bytes:
    """A real PNG (red pixels), written without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + (chunk(b"IEND", b""))
    )


def _run_with_artifacts(tmp_path: Path) -> tuple[Path, int]:
    store = tmp_path / "expbook.db"
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "loss.png").write_bytes(png())
    (tmp_path / "predictions.csv").write_text("id,label\n1,cat\n2,dog\n")
    (tmp_path / "model.pt").write_bytes(bytes(range(256)) * 40)
    with expbook.start_run("with-files", store=str(store)) as run:
        run.log_artifact(tmp_path / "plots")
        run.log_artifact(tmp_path / "predictions.csv")
        run.log_artifact(tmp_path / "model.pt", name="checkpoints/model.pt")
    return store, run.number


def test_the_run_page_lists_previews_and_downloads_artifacts(tmp_path: Path) -> None:
    require_chromium()
    store, number = _run_with_artifacts(tmp_path)
    with ui_server(store) as base, chromium() as browser, ui_page(browser, base, tmp_path) as ui:
        page = ui.open(f"/runs/{number}")
        rows = page.locator("#files table.artifacts tbody tr")
        assert rows.count() == 3
        text = page.inner_text("#files table.artifacts")
        assert "checkpoints/model.pt" in text and "10 KiB" in text
        assert hashlib.sha256(png()).hexdigest()[:12] in text
        image = page.locator("#files img.artifact-image")
        image.wait_for()
        page.wait_for_function(
            "() => document.querySelector('#files img.artifact-image').naturalWidth === 4"
        )
        page.locator("#files details.artifact-text summary").click()
        page.wait_for_function(
            "() => document.querySelector('#files details.artifact-text pre')"
            ".textContent.includes('2,dog')"
        )
        link = page.locator("#files a", has_text="checkpoints/model.pt")
        with page.expect_download() as download:
            link.click()
        saved = tmp_path / "downloaded.pt"
        download.value.save_as(saved)
        assert saved.read_bytes() == (tmp_path / "model.pt").read_bytes()
        ui.screenshot("run-artifacts")
        ui.assert_no_errors()


def test_the_api_serves_artifacts_by_name(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from expbook.server.app import create_app

    store, number = _run_with_artifacts(tmp_path)
    opened = expbook.open_store(store)
    with TestClient(create_app(opened), base_url="http://127.0.0.1:5005") as client:
        detail = client.get(f"/api/runs/{number}").json()
        listed = {a["name"]: a for a in detail["artifacts"]}
        assert listed["plots/loss.png"]["preview"] == "image"
        assert listed["predictions.csv"]["preview"] == "text"
        assert listed["checkpoints/model.pt"]["preview"] is None
        answer = client.get(f"/api/runs/{number}/artifacts/plots/loss.png")
        assert answer.status_code == 200 and answer.content == png()
        assert answer.headers["content-type"] == "image/png"
        assert answer.headers["etag"] == f'"{hashlib.sha256(png()).hexdigest()}"'
        saved = client.get(f"/api/runs/{number}/artifacts/checkpoints/model.pt?download=true")
        assert saved.headers["content-disposition"].startswith("attachment;")
        missing = client.get(f"/api/runs/{number}/artifacts/nope.bin")
        assert missing.status_code == 404 and "no artifact 'nope.bin'" in missing.json()["detail"]
