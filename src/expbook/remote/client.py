"""``HttpStore``: a store on an ``expbook server``, through its HTTP API.

Reads and the changes that are not a run's own data (experiments, settings, sweeps, deleting
runs) are calls that need the server. What a training process writes (creating its run, and
every batch of its writer) goes through the journal (``expbook.remote.journal``) first: the
batch is kept on disk, then sent; the call returns once it is on disk, whether or not the server
answered. While the server cannot be reached the run goes on and the journal grows; a
background sender retries with backoff and sends everything in order when the server is back,
and ``close`` sends what is left (or says in one line where it is kept). The server applies each
batch once whatever the retries (``WriteBatch.batch_id``, run UUIDs made here).

A write the server refuses (a value the database cannot hold) raises, as a local store's would,
so the run's writer finds and drops the one bad item; a refused entry of an older backlog is
moved to the journal's ``rejected/`` folder and named in one line.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import inspect
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from expbook.errors import ExpbookError, StoreError, StoreUnavailableError
from expbook.model import RunRecord, RunStatus
from expbook.remote import wire
from expbook.remote.credentials import normalized, token_for
from expbook.remote.journal import Entry, Journal, Producer
from expbook.store.base import RunSpec, Store, WriteBatch
from expbook.store.blobs import Reading
from expbook.validation import check_run_fields

READS = frozenset(
    {
        "find_runs", "count_runs", "resolve_run", "get_series", "iter_series", "series_keys",
        "get_attachment", "list_attachments", "list_artifacts", "artifact_references",
        "get_setting", "get_output", "get_experiment", "list_experiments", "get_sweep",
        "list_sweeps", "sweep_history", "list_trials", "schema_version",
    }
)  # fmt: skip
"""Store methods sent to ``POST /api/store/read`` (a read-only token may call them)."""

CALLS = frozenset(
    {
        "set_setting", "delete_runs", "create_experiment", "update_experiment", "create_sweep",
        "update_sweep", "delete_sweep", "add_trial", "claim_trial", "heartbeat_trials",
        "update_trial", "expire_trials", "remove_unreferenced_blobs",
    }
)  # fmt: skip
"""Store methods sent to ``POST /api/store/call``: changes that need the server's answer."""

REQUEST_BYTES = 8 << 20
"""Journal entries sent in one request, at most (about; one entry may be larger)."""
CLOSE_TIMEOUT = 60.0
"""How long ``close`` keeps sending what is journaled while the server answers."""
RETRY_MAX = 30.0
"""The longest wait between two attempts to reach a server that did not answer."""
CLOSE_RETRY = 5.0
"""How long ``close`` retries a server that does not answer (a restart) before it leaves the
rest in the journal, saying so."""
OUTAGE_NOTICE = 10.0
"""An outage is reported (one line) once it has lasted this long with writes waiting."""


class _Unavailable(Exception):
    """The server cannot be reached or cannot take writes now (carries the reason)."""


class _TooLarge(Exception):
    """The server refused a request for its size (413)."""


class HttpStore(Store):
    """The store served by ``expbook server`` at ``url`` (``https://host:port``).

    Args:
        token: sent as ``Authorization: Bearer``; default ``EXPBOOK_TOKEN``, else the token
            ``expbook login`` saved for ``url``.
        journal_root: where the journal lives (default ``$EXPBOOK_JOURNAL`` or
            ``~/.cache/expbook/journal``).
    """

    def __init__(
        self, url: str, *, token: str | None = None, journal_root: str | None = None
    ) -> None:
        import httpx

        from expbook import __version__

        self.url = normalized(url)
        self._token = token or token_for(self.url)
        self.headers = {"User-Agent": f"expbook/{__version__}"}
        if self._token:
            self.headers["Authorization"] = f"Bearer {self._token}"
        self._http = httpx.Client(
            base_url=self.url, headers=self.headers, timeout=httpx.Timeout(60.0, connect=5.0)
        )
        self._httpx = httpx
        self.journal = Journal(self.url, journal_root)
        self._own: Producer | None = None
        self._lock = threading.RLock()  # one sender at a time, entries in order
        self._append_lock = threading.Lock()  # appending never waits for a send
        self._awaited: dict[str, dict[str, Any] | None] = {}  # entry name -> its outcome
        self._orphans_done = False
        self._down_since: float | None = None
        self._down_reason = ""
        self._retry_at = 0.0
        self._backoff = 0.5
        self._noticed = False
        self._wake = threading.Event()
        self._closing = False
        self._sender: threading.Thread | None = None
        self._pid = os.getpid()
        self._request_bytes = REQUEST_BYTES
        # Registered now, before a tracker installs its own exit hook when its first run
        # starts: exit hooks run last-in first-out, so runs are finished before this sends.
        atexit.register(self.close)

    def __repr__(self) -> str:
        return f"HttpStore({self.url!r})"

    def after_fork(self) -> None:
        """In a forked child (a DataLoader worker): the parent's locks, sender thread, journal
        folder and connections are the parent's; this process starts its own when it writes."""
        self._lock = threading.RLock()
        self._append_lock = threading.Lock()
        self._awaited = {}
        self._own = None
        self._sender = None
        self._wake = threading.Event()
        self._pid = os.getpid()
        self._http = self._httpx.Client(
            base_url=self.url, headers=self.headers, timeout=self._http.timeout
        )

    # --- journaled writes ----------------------------------------------------------------------

    def create_run(self, spec: RunSpec) -> RunRecord:
        check_run_fields(
            name=spec.name, kind=spec.kind, tags=spec.tags, experiment=spec.experiment
        )
        spec = dataclasses.replace(spec, id=spec.id or uuid.uuid4().hex)
        result = self._journaled({"op": "create", "spec": spec})
        if result is None:  # kept in the journal: the server numbers it when it gets it
            return _offline_record(spec)
        return result

    def write(
        self, run_id: str, batch: WriteBatch, *, timeout: float | None = None,
        deferred: bool = False,
    ) -> None:  # fmt: skip
        """Keep ``batch`` in the journal, then send it; raises what the server's store raises,
        like a local store. While the server cannot be reached it returns once the batch is in
        the journal (it is sent when the server is back).

        ``deferred`` (a run's writer): return once the batch is in the journal; the sender
        thread sends it, in order, while the caller goes on, so that logging never waits for
        the network. A write the server's database refuses part of is split there, and only
        the refused items are dropped, each named in one line."""
        if batch.batch_id is None:
            batch.batch_id = uuid.uuid4().hex
        op = {"op": "write", "run": run_id, "batch": batch, "split": deferred}
        self._journaled(op, wait=not deferred)

    def _journaled(self, op: dict[str, Any], *, wait: bool = True) -> Any:
        """Keep ``op`` in the journal; with ``wait``, send the journal up to it and return its
        result (None when the server could not be reached: it stays in the journal)."""
        data = wire.frame(op)
        with self._append_lock:
            try:
                entry = self._producer().append(data)
            except OSError as exc:  # a full disk, an unwritable home: send without a copy
                return self._unjournaled(data, exc)
            if wait:
                self._awaited[entry.name] = None
        if not wait and not self._closing:
            self._start_sender()
            return None
        with self._lock:
            try:
                if time.monotonic() >= self._retry_at:
                    self._send_own()
            except _Unavailable:
                pass
            except ExpbookError:  # the server refuses the token: the caller is told, not later
                if self._awaited.pop(entry.name, None) is None and self._own is not None:
                    self._own.remove([entry])
                raise
            outcome = self._awaited.pop(entry.name, None)
        if outcome is None:
            self._start_sender()
            return None
        if "error" in outcome:
            raise wire.decode_error(outcome["error"])
        return wire.decode(outcome.get("ok"))

    def _unjournaled(self, data: bytes, problem: OSError) -> Any:
        try:
            with self._lock:
                self._send_own()  # what was journaled before goes first
                (outcome,) = self._post_frames([data])
        except _Unavailable as exc:
            raise StoreUnavailableError(
                f"cannot keep a write in the journal ({problem.strerror}: "
                f"{self.journal.directory}) nor send it ({exc})"
            ) from None
        self._report_dropped(outcome)
        if "error" in outcome:
            raise wire.decode_error(outcome["error"])
        return wire.decode(outcome.get("ok"))

    def _producer(self) -> Producer:
        if self._pid != os.getpid():  # forked without the tracker's hook
            self.after_fork()
        if self._own is None:
            self._own = self.journal.own()
        return self._own

    def _send_own(self) -> None:
        """Send the kept artifact contents, what dead processes left, then this process's
        entries, in order.

        Raises:
            _Unavailable: the server cannot take them now (what is left stays).
        """
        self._send_blobs()
        self._send_orphans()
        if self._own is not None:
            self._send(self._own)

    def _send(self, producer: Producer) -> None:
        """Send ``producer``'s entries, in order. The outcome of an entry a caller waits for
        (``_awaited``) is left for it; an entry refused that nobody waits for is set aside.

        Raises:
            _Unavailable: the server cannot take them now (what is left stays).
        """
        while entries := producer.pending(self._request_bytes):
            outcomes = self._post_entries(entries)
            for entry, outcome in zip(entries, outcomes, strict=False):
                self._report_dropped(outcome)
                if producer is self._own and entry.name in self._awaited:
                    self._awaited[entry.name] = outcome
                    producer.remove([entry])
                elif "error" in outcome:
                    self._reject(entry, outcome["error"])
                else:
                    producer.remove([entry])
            if len(outcomes) < len(entries):
                raise _Unavailable("the server stopped taking writes part way")

    def _report_dropped(self, outcome: dict[str, Any]) -> None:
        for item in outcome.get("dropped") or ():
            print(f"expbook: dropped {item}", file=sys.stderr)

    def _send_orphans(self) -> None:
        """Send what processes that died left in the journal (once per store object)."""
        if self._orphans_done:
            return
        skip = self._own.directory if self._own is not None else None
        for producer in self.journal.orphans(skip=skip):
            try:
                self._send(producer)
            finally:
                producer.close()
        self._orphans_done = True

    def _reject(self, entry: Entry, error: dict[str, Any]) -> None:
        reason = f"{error.get('type')}: {error.get('message')}"
        kept = self.journal.reject(entry, reason)
        print(f"expbook: the server refused a journaled write ({reason}); kept in {kept}",
              file=sys.stderr)  # fmt: skip

    def _post_entries(self, entries: list[Entry]) -> list[dict[str, Any]]:
        """``_post_frames`` for journal entries; fewer at a time when the server says a request
        is too large, and an entry too large on its own is refused like a bad one."""
        while True:
            try:
                return self._post_frames([e.data for e in entries])
            except _TooLarge as exc:
                if len(entries) == 1:
                    error = {"type": "StoreRefusedError", "message": str(exc)}
                    return [{"error": error}]
                entries = entries[: len(entries) // 2]
                self._request_bytes = max(1, sum(len(e.data) for e in entries))

    def _post_frames(self, frames: list[bytes]) -> list[dict[str, Any]]:
        """POST frames to the ingestion endpoint; one outcome per frame applied, in order
        (fewer than sent when the store stopped part way).

        Raises:
            _Unavailable: nothing could be applied now.
        """
        body = wire.framed(frames)
        response = self._request(
            "POST", "/api/store/ingest", content=body,
            headers={"Content-Type": "application/x-expbook-frames"},
        )  # fmt: skip
        outcomes = response.json()["results"]
        if not outcomes and frames:
            raise _Unavailable(response.json().get("unavailable") or "the store is unavailable")
        self._server_is_back()
        return outcomes

    def _id(self, run: Any) -> str:
        """A full run UUID is used as it is, without asking the server: a note or a tag added
        to a run by its UUID is journaled while the server is down, like its points."""
        if isinstance(run, str) and len(run) == 32 and _is_hex(run):
            return run.lower()
        return super()._id(run)

    # --- calls ---------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """An HTTP request; the response when it is a 200.

        Raises:
            _Unavailable: no answer, or 429/5xx (the caller retries later).
            StoreError: another answer (the server's message).
        """
        try:
            response = self._http.request(method, path, **kwargs)
        except self._httpx.HTTPError as exc:
            self._server_is_down(f"cannot reach {self.url}: {_reason(exc)}")
            raise _Unavailable(self._down_reason) from None
        if response.status_code == 200:
            return response
        message = _message(response)
        if response.status_code in (429, 502, 503, 504) or response.status_code >= 500:
            self._server_is_down(f"{self.url} answered {response.status_code}: {message}")
            raise _Unavailable(self._down_reason)
        if response.status_code == 413:
            raise _TooLarge(f"{self.url} answered 413: {message}")
        error = _error_of(response)
        if error is not None:
            raise wire.decode_error(error)
        if response.status_code == 401:
            raise StoreError(
                f"{self.url} refused the token ({message}); set EXPBOOK_TOKEN or run "
                f"'expbook login {self.url}'"
            )
        raise StoreError(f"{self.url} answered {response.status_code}: {message}")

    def _call(self, endpoint: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self._own is not None or not self._orphans_done:
            # read what this process wrote; a read goes on when the journal cannot be sent
            # now (the server is down, or refuses this token's writes: they stay kept)
            with self._lock, contextlib.suppress(_Unavailable, ExpbookError):
                self._send_own()
        body = json.dumps({"method": method, "args": wire.encode(args),
                           "kwargs": wire.encode(kwargs)})  # fmt: skip
        try:
            response = self._request(
                "POST", endpoint, content=body, headers={"Content-Type": "application/json"}
            )
        except _Unavailable as exc:
            raise StoreUnavailableError(str(exc)) from None
        return wire.decode(response.json()["value"])

    # --- artifacts -----------------------------------------------------------------------------

    def artifact_location(self) -> tuple[str, str]:
        return f"{self.url}/api/blobs", "server"

    def blobs(self) -> Any:
        """The server's blob proxy; content that cannot be sent now (the server is down) is
        kept in the journal and sent before the writes that name it."""
        from expbook.remote.blobs import HttpBlobStore

        cached = getattr(self, "_blob_store", None)
        if cached is None:
            cached = JournaledBlobs(HttpBlobStore(self.url, dict(self.headers)), self.journal)
            self._blob_store = cached
        return cached

    def _send_blobs(self) -> None:
        """Send the artifact contents kept in the journal (any process's: they are named by
        their hash, so two senders at once only repeat a request)."""
        kept = self.journal.blobs()
        if not kept:
            return
        remote = self.blobs().remote
        for path, _ in kept:
            try:
                remote.put_file(path)
            except StoreUnavailableError as exc:
                raise _Unavailable(str(exc)) from None
            except FileNotFoundError:  # sent by another process meanwhile
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    # --- the background sender -----------------------------------------------------------------

    def _server_is_down(self, reason: str) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self._backoff = 0.5
        else:
            self._backoff = min(self._backoff * 2, RETRY_MAX)
        self._down_reason = reason
        self._retry_at = now + self._backoff

    def _server_is_back(self) -> None:
        if self._down_since is not None and self._noticed:
            print(f"expbook: {self.url} answers again; sending the journaled writes",
                  file=sys.stderr)  # fmt: skip
        self._down_since = None
        self._noticed = False
        self._retry_at = 0.0

    def _start_sender(self) -> None:
        if self._closing:
            return
        if self._sender is not None and self._sender.is_alive():
            self._wake.set()
            return
        self._sender = threading.Thread(target=self._send_loop, name="expbook-sender", daemon=True)
        self._sender.start()

    def _send_loop(self) -> None:
        """Send what is journaled as it comes (woken by each write), and retry with backoff
        while the server cannot be reached. Never dies: the journal keeps everything."""
        while not self._closing:
            wait = self._retry_at - time.monotonic() if self._down_since is not None else 1.0
            self._wake.wait(max(0.05, wait))
            self._wake.clear()
            if self._closing:
                return
            if time.monotonic() < self._retry_at:
                continue
            with self._lock:
                try:
                    self._send_own()
                except _Unavailable:
                    self._notice_outage()
                except Exception as exc:  # a refused token, a bug: kept, retried, said once
                    self._server_is_down(str(exc) or repr(exc))
                    self._notice_outage(at_once=True)

    def _notice_outage(self, *, at_once: bool = False) -> None:
        if self._noticed or self._down_since is None:
            return
        if at_once or time.monotonic() - self._down_since >= OUTAGE_NOTICE:
            self._noticed = True
            print(
                f"expbook: {self._down_reason}; writes are kept in {self.journal.directory} "
                "and sent when it is back",
                file=sys.stderr,
            )

    # --- sync and close ------------------------------------------------------------------------

    def sync(self, *, timeout: float | None = None) -> tuple[int, int]:
        """Send everything journaled for this server that no live process is sending (this
        process's entries, and those of processes that died); returns (entries left, bytes
        left), over every producer.

        Raises:
            StoreUnavailableError: the server cannot be reached (nothing is lost).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._orphans_done = False
            self._retry_at = 0.0
            while True:
                try:
                    self._send_own()
                    break
                except _Unavailable as exc:
                    if deadline is None or time.monotonic() >= deadline:
                        raise StoreUnavailableError(str(exc)) from None
                    time.sleep(min(self._backoff, max(0.0, deadline - time.monotonic())))
        left = [(n, size) for _, n, size, _ in self.journal.status()]
        return sum(n for n, _ in left), sum(size for _, size in left)

    def close(self) -> None:
        """Send what this process journaled (for up to ``CLOSE_TIMEOUT`` seconds while the
        server answers; ``CLOSE_RETRY`` when it does not), then say in one line what is left
        and where.
        A write after ``close`` is still journaled and sent at once when it can be."""
        atexit.unregister(self.close)
        self._closing = True
        self._wake.set()
        if self._sender is not None:
            self._sender.join(5.0)
            self._sender = None
        with self._lock:
            own, self._own = self._own, None
            if own is not None and self._pid == os.getpid():
                self._drain(own)
                own.close()

    def _drain(self, own: Producer) -> None:
        """Send what this process journaled (see ``close``)."""
        self._own = own
        try:
            self._drain_own(own)
        finally:
            self._own = None

    def _drain_own(self, own: Producer) -> None:
        start = time.monotonic()
        deadline = start + float(os.environ.get("EXPBOOK_CLOSE_TIMEOUT", CLOSE_TIMEOUT))
        while own.count()[0] and time.monotonic() < deadline:
            try:
                self._retry_at = 0.0
                self._send_own()
            except _Unavailable:  # a restart takes seconds: wait that long, not a minute
                if time.monotonic() - start > CLOSE_RETRY:
                    break
                time.sleep(min(self._backoff, 1.0))
            except ExpbookError as exc:  # the server refuses the token: keep them
                self._down_reason = str(exc)
                break
        count, size = own.count()
        if count:
            print(
                f"expbook: {count} writes ({size:,} bytes) for {self.url} are kept in "
                f"{own.directory} ({self._down_reason or 'not sent yet'}); the next expbook "
                f"command on this store or 'expbook sync' sends them",
                file=sys.stderr,
            )


def _make_method(name: str, endpoint: str) -> Callable[..., Any]:
    signature = inspect.signature(getattr(Store, name))

    def method(self: HttpStore, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)  # a TypeError here, as locally
        value = self._call(endpoint, name, list(bound.args[1:]), bound.kwargs)
        return iter(value) if name == "iter_series" else value

    method.__name__ = name
    method.__doc__ = getattr(Store, name).__doc__
    method.__signature__ = signature  # type: ignore[attr-defined]
    return method


for _name in READS:
    setattr(HttpStore, _name, _make_method(_name, "/api/store/read"))
for _name in CALLS:
    setattr(HttpStore, _name, _make_method(_name, "/api/store/call"))
HttpStore.__abstractmethods__ = frozenset()


def _offline_record(spec: RunSpec) -> RunRecord:
    return RunRecord(
        id=str(spec.id), number=0, name=spec.name or "run", status=RunStatus.RUNNING,
        started_at=spec.started_at, experiment=spec.experiment, kind=spec.kind,
        heartbeat_at=spec.started_at, command=tuple(spec.command), cwd=spec.cwd, pid=spec.pid,
        hostname=spec.hostname, params=dict(spec.params), tags=tuple(sorted(set(spec.tags))),
    )  # fmt: skip


def _message(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(data, dict):
        if isinstance(data.get("error"), dict):
            return str(data["error"].get("message"))
        if "detail" in data:
            return str(data["detail"])
    return str(data)[:200]


def _error_of(response: Any) -> dict[str, Any] | None:
    """The error a 4xx answer of the store API carries (``{"error": {"type", ...}}``)."""
    try:
        data = response.json()
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) and "type" in error else None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return text or type(exc).__name__


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


class JournaledBlobs(Reading):
    """An ``HttpBlobStore`` whose uploads never fail for an outage: content the server cannot
    take now is copied into the journal (``Journal.keep_blob``) and the sender sends it before
    the journaled writes, so ``log_artifact`` goes on like ``log`` while the server is down.
    Reads of such content are served from the journal until it is sent."""

    def __init__(self, remote: Any, journal: Journal) -> None:
        self.remote = remote
        self.journal = journal
        self.url = remote.url

    def __getattr__(self, name: str) -> Any:
        return getattr(self.remote, name)

    def put_file(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        try:
            return self.remote.put_file(source)
        except StoreUnavailableError as exc:
            from expbook.store.blobs import file_chunks

            with open(source, "rb") as handle:
                return self._keep(file_chunks(handle), exc)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        try:
            return self.remote.put_bytes(data)
        except StoreUnavailableError as exc:
            return self._keep(iter([data]), exc)

    def _keep(self, chunks: Any, problem: StoreUnavailableError) -> tuple[str, int]:
        try:
            return self.journal.keep_blob(chunks)
        except OSError as exc:
            raise StoreUnavailableError(
                f"{problem}; and the journal cannot keep the content ({exc.strerror}: "
                f"{self.journal.blob_directory})"
            ) from None

    def _kept(self, sha256: str) -> str | None:
        path = os.path.join(self.journal.blob_directory, sha256)
        return path if os.path.exists(path) else None

    def exists(self, sha256: str) -> bool:
        return self._kept(sha256) is not None or self.remote.exists(sha256)

    def open(self, sha256: str) -> Any:
        kept = self._kept(sha256)
        if kept is not None:
            with contextlib.suppress(FileNotFoundError):  # sent and removed meanwhile
                return open(kept, "rb")
        return self.remote.open(sha256)
