"""The FastAPI application: the JSON API, the pages and their static files.

Pages are small HTML shells (``pages/``) that load our own scripts (``static/``) and the
plotly.js that the ``plotly`` Python package ships; nothing comes from the internet and nothing
is built with Node. The scripts read everything through the JSON API, so the API is the one
contract between the store and what the browser shows.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from html import escape as html_escape
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from expbook.errors import (
    AmbiguousRunError,
    ExpbookError,
    ExperimentNotFoundError,
    FilterSyntaxError,
    MetricNotFoundError,
    NoteNotFoundError,
    RunNotFoundError,
    StoreError,
)
from expbook.server.api import router
from expbook.server.blobs import install_blobs
from expbook.server.bulk import install as install_bulk
from expbook.server.compare import install as install_compare
from expbook.server.encoding import ApiJSON
from expbook.server.experiments_best import install as install_experiments_best
from expbook.server.mlflow import install_mlflow
from expbook.server.openapi import openapi_30
from expbook.server.remote import install as install_remote
from expbook.server.security import MAX_BODY_BYTES, Guard, content_security_policy
from expbook.server.sweeps import install as install_sweeps
from expbook.server.views import install as install_views
from expbook.store.base import Store

HERE = Path(__file__).parent
PAGES = ("runs", "run", "compare", "experiment", "experiments", "sweeps", "sweep")
_NOT_FOUND = (RunNotFoundError, ExperimentNotFoundError, MetricNotFoundError, NoteNotFoundError)

__all__ = ["MAX_BODY_BYTES", "create_app"]


def create_app(
    store: Store, *, read_only: bool = False, allowed_hosts: Iterable[str] = (),
    auth: bool = False,
) -> FastAPI:  # fmt: skip
    """The web UI and JSON API on ``store`` (which the caller closes).

    Args:
        allowed_hosts: host names it answers to besides the loopback ones (``"*"``: any);
            see ``security.py``.
        auth: every request needs one of the store's API tokens (``expbook server``).
    """
    from expbook import __version__

    app = FastAPI(
        title="expbook",
        version=__version__,
        description="The JSON API of expbook's web UI: runs, metric series, experiments.",
        docs_url=None,  # served below with Swagger UI from the swagger-ui-bundle package
        redoc_url=None,
        openapi_url="/api/openapi.json",
        default_response_class=ApiJSON,
    )
    app.state.store = store
    app.state.read_only = read_only
    app.include_router(router)
    install_sweeps(app)
    install_compare(app)
    install_bulk(app)
    install_experiments_best(app)
    install_views(app)
    install_mlflow(app)
    install_remote(app)
    install_blobs(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.mount("/vendor/swagger", StaticFiles(directory=swagger_ui_dir()), name="swagger")
    _add_pages(app)
    _add_error_handlers(app)
    _warm_up_when_serving(app)
    app.add_middleware(
        Guard, allowed_hosts=allowed_hosts, tokens=store if auth else None, read_only=read_only
    )
    return app


def _warm_up_when_serving(app: FastAPI) -> None:
    """Once the app serves, import scipy.stats in the background: the first grouped table or
    comparison would otherwise wait the 0.4 to 0.6 s of that import, while ``expbook ui``
    itself starts without it (benchmarks/bench_ui_groups.py)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state:
            warm_up = threading.Thread(target=_import_statistics, name="expbook-warm-up")
            warm_up.daemon = True
            warm_up.start()
            yield state

    app.router.lifespan_context = lifespan


def _import_statistics() -> None:
    import scipy.stats  # noqa: F401


def plotly_js() -> Path:
    """plotly.min.js as installed with the ``plotly`` package."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def swagger_ui_dir() -> str:
    """Swagger UI's files as the ``swagger-ui-bundle`` package installs them (no CDN)."""
    import swagger_ui_bundle

    return swagger_ui_bundle.swagger_ui_path


def _add_pages(app: FastAPI) -> None:
    shell = (HERE / "pages" / "shell.html").read_text()

    def page(name: str, title: str, *, allow_eval: bool = False) -> HTMLResponse:
        html = shell.replace("{{page}}", name).replace("{{title}}", html_escape(title))
        headers = {"Cache-Control": "no-cache"}
        if allow_eval:
            headers["Content-Security-Policy"] = content_security_policy(allow_eval=True)
        return HTMLResponse(html, headers=headers)

    @app.get("/", include_in_schema=False)
    def runs_page() -> HTMLResponse:
        return page("runs", "Runs")

    @app.get("/runs/{ref}", include_in_schema=False)
    def run_page(ref: str) -> HTMLResponse:
        return page("run", f"Run {ref}")

    @app.get("/compare", include_in_schema=False)
    def compare_page() -> HTMLResponse:
        return page("compare", "Compare runs", allow_eval=True)  # plotly's parcoords (WebGL)

    @app.get("/experiments", include_in_schema=False)
    def experiments_page() -> HTMLResponse:
        return page("experiments", "Experiments")

    @app.get("/experiments/{name:path}", include_in_schema=False)
    def experiment_page(name: str) -> HTMLResponse:
        return page("experiment", name)

    @app.get("/sweeps", include_in_schema=False)
    def sweeps_page() -> HTMLResponse:
        return page("sweeps", "Sweeps")

    @app.get("/sweeps/{ref}", include_in_schema=False)
    def sweep_page(ref: str) -> HTMLResponse:
        return page("sweep", f"Sweep {ref}", allow_eval=True)  # plotly's parcoords (WebGL)

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        html = (HERE / "pages" / "apidocs.html").read_text()
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    @app.get("/api/openapi-3.0.json", include_in_schema=False)
    def api_docs_schema() -> ApiJSON:
        """The schema as OpenAPI 3.0, which the Swagger UI of swagger-ui-bundle reads."""
        return ApiJSON(openapi_30(app.openapi()))

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        return FileResponse(plotly_js(), headers={"Cache-Control": "max-age=86400"})


def _add_error_handlers(app: FastAPI) -> None:
    def error(status: int, detail: Any) -> ApiJSON:
        return ApiJSON({"detail": detail}, status_code=status)

    @app.exception_handler(FilterSyntaxError)
    def bad_filter(request: Request, exc: FilterSyntaxError) -> ApiJSON:
        return error(
            400,
            {"message": str(exc), "reason": exc.reason, "position": exc.position,
             "text": exc.text},
        )  # fmt: skip

    @app.exception_handler(AmbiguousRunError)
    def ambiguous(request: Request, exc: AmbiguousRunError) -> ApiJSON:
        return error(409, str(exc))

    for kind in _NOT_FOUND:
        app.add_exception_handler(kind, lambda request, exc: error(404, str(exc)))

    @app.exception_handler(StoreError)
    def store_down(request: Request, exc: StoreError) -> ApiJSON:
        if _is_conflict(exc):  # a unique name taken by a concurrent write
            return error(409, f"a name is taken already: {exc}")
        return error(503, str(exc))

    @app.exception_handler(ExpbookError)
    def invalid(request: Request, exc: ExpbookError) -> ApiJSON:
        return error(400, str(exc))

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> ApiJSON:
        return error(422, "; ".join(_problem(e) for e in exc.errors()))


def _problem(error: dict[str, Any]) -> str:
    """One problem of a malformed request, naming where and what: "query.status.0: Input
    should be 'running', ... (got 'sleeping')"."""
    where = ".".join(str(part) for part in error["loc"] if part != "body")
    shown = repr(error.get("input"))
    got = f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})" if "input" in error else ""
    return f"{where}: {error['msg']}{got}"


def _is_conflict(exc: StoreError) -> bool:
    from sqlalchemy.exc import IntegrityError

    return isinstance(exc.__cause__, IntegrityError)
